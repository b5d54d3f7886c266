# Three SGD steps of linear regression on nn.Linear(2, 1), after d2l.ai "Concise Implementation of Linear
# Regression" (https://d2l.ai/chapter_linear-regression/linear-regression-concise.html: true w = [2, -3.4],
# b = 4.2, nn.Linear(2, 1), MSE loss, SGD), with a fixed batch instead of a data loader.
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(10, 2)
y = x @ torch.tensor([[2.0], [-3.4]]) + 4.2
model = nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.03)
for step in range(3):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
