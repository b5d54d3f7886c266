# Origin: pytorch/pytorch docs (torch.autograd.grad docstring, docs/source/notes/autograd.rst) and the "Gradient penalty" example of pytorch/pytorch docs/source/notes/amp_examples.rst (without amp/GradScaler); modeled on them, rewritten for this corpus
import torch
import torch.nn as nn

torch.manual_seed(0)

# First and second derivative of a scalar function with create_graph=True
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = (x ** 3).sum()
dy_dx, = torch.autograd.grad(y, x, create_graph=True)
print(dy_dx)
d2y_dx2, = torch.autograd.grad(dy_dx.sum(), x)
print(d2y_dx2)

# Grad with respect to several inputs, allow_unused and grad_outputs
a = torch.randn(3, requires_grad=True)
b = torch.randn(3, requires_grad=True)
c = torch.randn(3, requires_grad=True)
out = a * b + b.sin()
ga, gb, gc = torch.autograd.grad(out, (a, b, c), grad_outputs=torch.ones(3), allow_unused=True)
print(ga.shape, gb.shape, gc)

# Gradient penalty: the norm of input gradients becomes part of the loss
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.MSELoss()
for epoch in range(3):
    input = torch.randn(6, 4)
    target = torch.randn(6, 1)
    optimizer.zero_grad()
    output = model(input)
    loss = loss_fn(output, target)

    # Creates gradients
    grad_params = torch.autograd.grad(outputs=loss,
                                      inputs=model.parameters(),
                                      create_graph=True)

    # Computes the penalty term and adds it to the loss
    grad_norm = 0
    for grad in grad_params:
        grad_norm += grad.pow(2).sum()
    grad_norm = grad_norm.sqrt()
    loss = loss + grad_norm

    loss.backward()
    optimizer.step()
    print(epoch, round(loss.item(), 5))

# Hessian-vector product by double backward
w = torch.randn(5, requires_grad=True)
v = torch.randn(5)
f = (w.exp() * w).sum()
g, = torch.autograd.grad(f, w, create_graph=True)
hvp, = torch.autograd.grad(g, w, grad_outputs=v)
print(torch.allclose(hvp, (w.exp() * (w + 2)) * v))
