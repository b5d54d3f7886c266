# Origin: pytorch/pytorch docs/source/notes/autograd.rst ("Autograd for Complex Numbers": conjugate Wirtinger gradients, real-valued loss of complex params) and docs/source/complex_numbers.rst ("Autograd" / optimizers on complex parameters); modeled on them, rewritten for this corpus
import torch

torch.manual_seed(0)

# Gradient of a real-valued loss w.r.t. a complex leaf is the conjugate Wirtinger
# derivative (times 2): d|z|^2/dz* -> 2 z
z = torch.randn(3, dtype=torch.cfloat, requires_grad=True)
loss = (z.abs() ** 2).sum()
loss.backward()
print(torch.allclose(z.grad, 2 * z.detach()))

# A complex-valued intermediate, real-valued output
x = torch.randn(4, dtype=torch.cdouble, requires_grad=True)
w = torch.randn(4, dtype=torch.cdouble, requires_grad=True)
y = x * w.conj()
out = y.real.sum() + y.imag.pow(2).sum() + torch.angle(x).sum()
out.backward()
print(x.grad.dtype, w.grad.shape)

# Checking a holomorphic and a non-holomorphic function with gradcheck
inp = torch.randn(3, dtype=torch.cdouble, requires_grad=True)
print(torch.autograd.gradcheck(lambda t: (t * t).exp(), (inp,)))
print(torch.autograd.gradcheck(lambda t: t.abs() * t.conj(), (inp,)))

# Complex parameters with an optimizer: fit a complex linear map
A = torch.randn(3, 3, dtype=torch.cfloat)
xs = torch.randn(16, 3, dtype=torch.cfloat)
ys = xs @ A.T
W = torch.zeros(3, 3, dtype=torch.cfloat, requires_grad=True)
optimizer = torch.optim.Adam([W], lr=0.1)
for step in range(50):
    optimizer.zero_grad()
    pred = xs @ W.T
    loss = (pred - ys).abs().pow(2).mean()
    loss.backward()
    optimizer.step()
    if step % 25 == 24:
        print(step, round(loss.item(), 4))

# view_as_real / view_as_complex are differentiable views
c = torch.randn(2, 2, dtype=torch.cfloat, requires_grad=True)
r = torch.view_as_real(c)
back = torch.view_as_complex(r * 2)
back.abs().sum().backward()
print(c.grad.shape)
