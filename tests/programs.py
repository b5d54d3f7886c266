"""Programs the capture must run exactly as Python does, shared by several test modules."""

SEED_1 = """
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x+3
y.backward()
"""

SEED_2 = """
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x+3
z = 5*y+6
z.backward()
"""

SEED_3 = """
a = torch.tensor(5.0, requires_grad=True)
x = torch.tensor(10.0, requires_grad=True)
y = 2*x*x+3*a
b = 6*x*a
z = y*y+1/(b*y)
z.backward()
"""

# The seed's chain rule (../shared/seed) as a loop of 1,000 iterations of 12 ops: past the default budget.
SEED_LOOP = """
for _ in range(1000):
    a = torch.tensor(5.0, requires_grad=True)
    x = torch.tensor(10.0, requires_grad=True)
    y = 2*x*x + 3*a
    b = 6*x*a
    z = y*y + 1/(b*y)
    z.backward()
"""

SQUARE_FUNCTION = """
class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return 2 * x * g
"""

CUDA_NO_SYNC = """
torch.cuda.set_sync_debug_mode("error")
w = torch.randn(64, 64, device="cuda", requires_grad=True)
x = torch.randn(8, 64, device="cuda")
h = x
for _ in range(4):
    h = torch.tanh(h @ w) + 0.5
small = (h[0, :4] * 2).sum()
loss = h.pow(2).mean() + small
loss.backward()
torch.cuda.set_sync_debug_mode(0)
"""

LOOP_50 = """
w = torch.tensor(0.9, requires_grad=True)
h = torch.tensor(1.0)
for t in range(50):
    h = torch.tanh(h * w + 0.1)
loss = h * 2
loss.backward()
"""

CONTROL_FLOW = """
x = torch.tensor(1.5, requires_grad=True)
h = x
for i in range(3):
    h = h * x + i
if h > 5:
    out = h.sin()
else:
    out = h.cos()
n = 0
while out.abs() < 10 and n < 5:
    out = out * 2
    n += 1
out.backward()
"""

MODULE_STEP = """
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = torch.randn(16, 4)
target = torch.randn(16, 1)
loss = nn.functional.mse_loss(model(data), target)
opt.zero_grad()
loss.backward()
opt.step()
loss2 = nn.functional.mse_loss(model(data), target)
"""

IN_PLACE = """
w = torch.randn(5, requires_grad=True)
h = w * 2
h.add_(1)
h[0] = 0.0
h.mul_(3)
s = h.sum()
s.backward()
with torch.no_grad():
    w -= 0.1 * w.grad
big = torch.ones(200)
big.add_(2)
"""

DETACH = """
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * x
frozen = y.detach()
z = (y + frozen * 3).sum()
z.backward()
v = z.item()
"""

AUTOGRAD_GRAD = """
x = torch.tensor(3.0, requires_grad=True)
y = x ** 3
dx, = torch.autograd.grad(y, x, create_graph=True)
d2x, = torch.autograd.grad(dx, x)
"""

FUNCTIONS = """
def layer(inp, weight):
    pre = inp @ weight
    act = torch.tanh(pre)
    return act

w1 = torch.randn(3, 3, requires_grad=True)
inp = torch.randn(2, 3)
a, b = layer(inp, w1), layer(inp * 2, w1)
total = (a * b).sum()
total += 1
total.backward()
"""

TRANSPARENCY_SUITE = {
    "seed_1": SEED_1, "seed_2": SEED_2, "seed_3": SEED_3, "control_flow": CONTROL_FLOW,
    "module_step": MODULE_STEP, "in_place": IN_PLACE, "detach": DETACH, "autograd_grad": AUTOGRAD_GRAD,
    "functions": FUNCTIONS,
}

# The PyTorch tutorial "optimizer step in backward": each parameter steps as soon as its gradient is ready.
OPTIMIZER_IN_BACKWARD = """
model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
opt_dict = {p: torch.optim.SGD([p], lr=0.1) for p in model.parameters()}
def step(p):
    opt_dict[p].step()
    opt_dict[p].zero_grad()
for p in model.parameters():
    p.register_post_accumulate_grad_hook(step)
x = torch.tensor([[1.0, 2.0, 3.0]])
loss = model(x).sum()
loss.backward()
"""

# An optimizer step with momentum and a zero_grad() that zeroes in place.
STEP_WITH_MOMENTUM = """
import torch.nn as nn
model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x = torch.randn(5, 3)
loss = model(x).sum()
loss.backward()
opt.step()
opt.zero_grad(set_to_none=False)
"""
