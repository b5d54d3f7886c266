# One training step of a two-layer ReLU network, after the PyTorch tutorial "Learning PyTorch with Examples",
# section "PyTorch: optim" (https://pytorch.org/tutorials/beginner/pytorch_with_examples.html,
# examples_nn/two_layer_net_optim.py), shrunk to 4 -> 8 -> 1 and SGD(lr=0.1) as in issue 10.
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(16, 4)
target = torch.randn(16, 1)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
opt.zero_grad()
loss = nn.functional.mse_loss(model(x), target)
loss.backward()
opt.step()
