"""Build demo.ipynb from the cells below, execute it with a real kernel and save it with its outputs, and the
README's pictures (docs/) from those outputs.

    python scripts/build_demo.py            # writes demo.ipynb next to the README, and docs/*.png
"""
from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent

CELLS = [
    ("markdown", """# gradmagic: seeing PyTorch autograd

This notebook walks through the basics of PyTorch autograd with a few small programs and shows, for each,
what autograd actually built: the graph, with the cell's own variable names, every value and every gradient.

`%%autograd` runs the cell exactly as Python would (same values, same `.grad`, same variables) and records
every tensor operation on the way."""),
    ("code", "%load_ext gradmagic"),
    ("markdown", """## 1. One variable

Start with `x = 10.0` and `y = 2x² + 3`. With `requires_grad=True`, PyTorch records how `y` was computed,
and `y.backward()` fills `x.grad` with dy/dx = 4x = **40** at x = 10."""),
    ("code", """%%autograd
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x + 3
y.backward()"""),
    ("markdown", """## 2. The chain rule

Now `z = 5y + 6`. autograd multiplies local derivatives along the path:
dz/dx = dz/dy · dy/dx = 5 · 40 = **200**. The graph shows the gradient arriving at every tensor on the way,
`y` included, without `retain_grad()`: a non-leaf's `.grad` stays `None`, exactly as in a plain run."""),
    ("code", """%%autograd
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x + 3
z = 5*y + 6
z.backward()"""),
    ("markdown", """## 3. Gradients add up over paths

The main lesson. With two inputs `x`, `a`, two hidden values `y`, `b` and an output `z`, `x` reaches `z`
along two paths, and autograd sums them:

dz/dx = dz/dy · dy/dx + dz/db · db/dx = 430 · 40 + (−5.17·10⁻⁸) · 30 ≈ **17200**"""),
    ("code", """%%autograd
a = torch.tensor(5.0, requires_grad=True)
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x + 3*a
b = 6*x*a
z = y*y + 1/(b*y)
z.backward()"""),
    ("markdown", """The result is also an object, `_autograd`, holding the networkx graph. The named tensors, joined
wherever a path of operations connects them: `x` and `a` feed `y` and `b`, which feed `z`:"""),
    ("code", """named = _autograd.named_graph()
sorted((named.nodes[u]["name"], named.nodes[v]["name"]) for u, v in named.edges)"""),
    ("markdown", """## 4. Dynamic graphs: Python control flow

PyTorch builds the graph while the code runs, so `if`, `for` and `while` on tensor values give the graph
that actually ran. A name rebound in a loop gets one node per iteration (`h₁ h₂ h₃`)."""),
    ("code", """%%autograd --rankdir LR
x = torch.tensor(1.5, requires_grad=True)
h = x
for i in range(3):
    h = h * x + i
if h > 5:
    out = h.sin()
else:
    out = h.cos()
out.backward()"""),
    ("markdown", """## 5. A small network and a training step

Parameters are named by their module path (`model.0.weight`), and every op knows the module it ran in.
The optimizer's in-place update makes a new version of each parameter."""),
    ("code", """%%autograd --no-table
import torch.nn as nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data, target = torch.randn(8, 3), torch.randn(8, 1)
loss = nn.functional.mse_loss(model(data), target)
opt.zero_grad()
loss.backward()
opt.step()"""),
    ("markdown", """## 6. No backward yet

A cell that never calls `backward()` still shows values, and says how to get gradients: `--backward NAME`
calls `NAME.backward()` after the cell."""),
    ("code", """%%autograd --no-graph
w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
score = (w * w).sum()"""),
    ("code", """%%autograd --backward score
w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
score = (w * w).sum()"""),
    ("markdown", """## 7. Explain: the gradient is a sum over paths

`--explain NAME` writes the lesson of section 3 out with the run's own numbers: the chain rule over the named variables
and every path from `x` to `z`, each with its product of local derivatives. On the picture, each edge carries the
gradient that flowed along it (label and line width)."""),
    ("code", """%%autograd --explain x --no-table
a = torch.tensor(5.0, requires_grad=True)
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x + 3*a
b = 6*x*a
z = y*y + 1/(b*y)
z.backward()"""),
    ("markdown", """## 8. Where did my gradient go?

gradmagic marks what autograd could not follow. Here `u` never gets a gradient because `.detach()` cut the only
path from it to the loss, and reading `.grad` of a non-leaf gives `None` (the fix is `retain_grad()`)."""),
    ("code", """%%autograd --no-table
w = torch.tensor(2.0, requires_grad=True)
u = torch.tensor(3.0, requires_grad=True)
hidden = (w * u).detach()
loss = hidden * w
loss.backward()
print(loss.grad)"""),
    ("markdown", """`--check` compares the leaves' gradients with finite differences on a float64 re-run of the recorded
operations. A custom `autograd.Function` whose backward is wrong (it forgets the factor 2) is caught:"""),
    ("code", """%%autograd --check --no-table
class BadSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return x * grad  # should be 2 * x * grad

p = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
q = BadSquare.apply(p).sum()
q.backward()"""),
    ("markdown", """## 9. Big graphs stay readable

A 1,000-step RNN makes about 12,000 nodes. The picture folds the repeated iterations into one block (ops inside
`nn.Module`s fold into one box per module the same way, `--depth N` opens them); `_autograd.graph` keeps every
node."""),
    ("code", """%%autograd --no-table
torch.manual_seed(0)
xs = torch.randn(1000, 1, 32)
wx = torch.randn(32, 64, requires_grad=True)
wh = (torch.randn(64, 64) * 0.1).requires_grad_()
bias = torch.zeros(64, requires_grad=True)
h = torch.zeros(1, 64)
for t in range(1000):
    h = torch.tanh(xs[t] @ wx + h @ wh + bias)
loss = h.sum()
loss.backward()"""),
    ("code", """_autograd.graph.number_of_nodes()"""),
    ("markdown", """The full capture records every torch call (values, constants, the gradient along every edge), which costs
tens of microseconds per call: nothing in a teaching cell, about 10x the plain loop here. For long loops and
training steps, `--lean` records nothing per op: it reads the graph autograd built anyway, and hooks only the
named tensors. The loop runs at about 1.3x its plain speed; the picture has the same shape; what is missing is
said under it (values of anonymous intermediates, constants, flows along edges)."""),
    ("code", """%%autograd --lean --no-table
wx.grad = wh.grad = bias.grad = None  # the cell above already filled them: start afresh, as a training step would
h = torch.zeros(1, 64)
for t in range(1000):
    h = torch.tanh(xs[t] @ wx + h @ wh + bias)
loss = h.sum()
loss.backward()"""),
    ("markdown", """## 10. Your own model

The same cell magic on the programs people bring: a training step of an MLP, a small CNN and a transformer block.
Each `nn.Module` call is one box (its class, shapes and parameters inside), the optimizer's update is one node, and
the table shows what every name holds at the end, with earlier versions and `.grad` tensors folded below it.
`--all` shows every op; `--depth N` opens the boxes."""),
    ("code", """%%autograd
# screenshot: mlp_step
import torch.nn as nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, target = torch.randn(16, 4), torch.randn(16, 1)
opt.zero_grad()
loss = nn.functional.mse_loss(model(x), target)
loss.backward()
opt.step()"""),
    ("markdown", """A small CNN on MNIST-shaped images, after pytorch/examples' `mnist/main.py`, one SGD step with momentum:"""),
    ("code", """%%autograd
# screenshot: cnn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1))

torch.manual_seed(0)
net = Net()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
images, labels = torch.randn(4, 1, 28, 28), torch.tensor([3, 1, 4, 1])
opt.zero_grad()
loss = nn.functional.cross_entropy(net(images), labels)
loss.backward()
opt.step()"""),
    ("markdown", """A transformer encoder block with a linear head and Adam:"""),
    ("code", """%%autograd
# screenshot: transformer
torch.manual_seed(0)
block = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
head = nn.Linear(16, 1)
opt = torch.optim.Adam([*block.parameters(), *head.parameters()], lr=1e-3)
tokens = torch.randn(2, 5, 16)
opt.zero_grad()
loss = head(block(tokens)).pow(2).mean()
loss.backward()
opt.step()"""),
    ("markdown", """## 11. Exports

`-s PATH` (repeatable) writes the picture (`.png .svg .pdf`) or the graph data (`.graphml .json .dot`);
`_autograd.save(path)` does the same from Python."""),
    ("code", """%%autograd -s seed.svg -s seed.graphml --no-table --no-graph
a = torch.tensor(5.0, requires_grad=True)
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x + 3*a
b = 6*x*a
z = y*y + 1/(b*y)
z.backward()"""),
    ("code", """import networkx as nx
from pathlib import Path
print(Path("seed.svg").read_text()[:60], "...")
g = nx.read_graphml("seed.graphml")
print(g.number_of_nodes(), "nodes,", g.number_of_edges(), "edges")"""),
]


#: README picture -> a line only the demo cell that draws it has.
PICTURES = {"seed.png": "z = y*y + 1/(b*y)\nz.backward()", "rnn_collapsed.png": "for t in range(1000):\n    h = torch.tanh"}


def build() -> nbformat.NotebookNode:
    """The notebook, unexecuted."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    notebook.cells = [make[kind](text) for kind, text in CELLS]
    return notebook


def main() -> None:
    notebook = build()
    with tempfile.TemporaryDirectory() as folder:  # exports land here, not in the repository
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}}).execute()
    nbformat.validate(notebook)
    nbformat.write(notebook, ROOT / "demo.ipynb")
    print(f"wrote {ROOT / 'demo.ipynb'}")
    for name, marker in PICTURES.items():
        (ROOT / "docs" / name).write_bytes(picture_of(notebook, marker))
        print(f"wrote {ROOT / 'docs' / name}")


def picture_of(notebook: nbformat.NotebookNode, marker: str) -> bytes:
    """The PNG shown by the first code cell whose source has `marker`."""
    cell = next(c for c in notebook.cells if c.cell_type == "code" and marker in c.source)
    page = next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
    return base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))


if __name__ == "__main__":
    main()
