# Origin: d2l-ai/d2l-en chapter_multilayer-perceptrons/numerical-stability-and-init.md (sigmoid vanishing gradients via backward(torch.ones_like(x)), product of 100 random matrices; modeled on it, rewritten for this corpus: printed summaries instead of plots, 20 matrices, plus Xavier init check)
import torch
from torch import nn

torch.manual_seed(0)

# Vanishing gradients
x = torch.arange(-8.0, 8.0, 1.0, requires_grad=True)
y = torch.sigmoid(x)
y.backward(torch.ones_like(x))
print([round(v, 5) for v in x.grad.tolist()])

# Exploding gradients
M = torch.normal(0, 1, size=(4, 4))
print('a single matrix', M)
for i in range(20):
    M = M @ torch.normal(0, 1, size=(4, 4))
print('after multiplying 20 matrices', M.abs().max().item() > 1e3)

# Xavier initialization keeps activations and gradients of similar scale
net = nn.Sequential(*[nn.Sequential(nn.Linear(32, 32), nn.Tanh()) for _ in range(6)])


def init_xavier(module):
    if type(module) == nn.Linear:
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


grad_norms = {}
for name, init in (('normal', lambda m: nn.init.normal_(m.weight, std=1.0) if type(m) == nn.Linear else None),
                   ('xavier', init_xavier)):
    net.apply(init)
    net.zero_grad()
    X = torch.randn(16, 32)
    out = net(X)
    out.sum().backward()
    grad_norms[name] = [round(layer[0].weight.grad.norm().item(), 3) for layer in net]
print(grad_norms['normal'][0] < grad_norms['normal'][-1], len(grad_norms['xavier']))
