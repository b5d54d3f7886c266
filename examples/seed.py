"""The seed's third program: dz/dx is the sum over both paths, x -> y -> z and x -> b -> z."""
import torch

a = torch.tensor(5.0, requires_grad=True)
x = torch.tensor(10.0, requires_grad=True)
y = 2 * x * x + 3 * a
b = 6 * x * a
z = y * y + 1 / (b * y)
z.backward()
print(f"x.grad = {x.grad}, a.grad = {a.grad}")
