# Origin: pytorch/pytorch torch/utils/checkpoint.py (checkpoint / checkpoint_sequential docstrings) and docs/source/checkpoint.rst; modeled on them, rewritten for this corpus: a small MLP, both use_reentrant=True and use_reentrant=False
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * 2)
        self.fc2 = nn.Linear(dim * 2, dim)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = self.fc2(h)
        return x + h


class Net(nn.Module):
    def __init__(self, dim, n, use_reentrant):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim) for _ in range(n)])
        self.head = nn.Linear(dim, 1)
        self.use_reentrant = use_reentrant

    def forward(self, x):
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=self.use_reentrant)
        return self.head(x)


results = {}
for use_reentrant in (True, False):
    torch.manual_seed(0)
    net = Net(8, 3, use_reentrant)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    # with use_reentrant=True at least one input must require grad
    x = torch.randn(4, 8, requires_grad=True)
    target = torch.randn(4, 1)
    for step in range(3):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), target)
        loss.backward()
        opt.step()
    results[use_reentrant] = (loss.item(), x.grad.clone())
    print(use_reentrant, round(loss.item(), 5))
print(torch.allclose(results[True][1], results[False][1]))


# A plain function with two inputs under checkpoint
def run_function(a, b):
    c = a * b
    d = c.sin() + a
    return d.sum()


a = torch.randn(5, requires_grad=True)
b = torch.randn(5, requires_grad=True)
out = checkpoint(run_function, a, b, use_reentrant=False)
out.backward()
print(torch.allclose(a.grad, b * torch.cos(a * b) + 1))

# checkpoint_sequential over an nn.Sequential split into 2 segments
model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
input_var = torch.randn(3, 8, requires_grad=True)
out = checkpoint_sequential(model, 2, input_var, use_reentrant=False)
out.sum().backward()
print(model[0].weight.grad.shape, input_var.grad.shape)
