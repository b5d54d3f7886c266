# Origin: pytorch/pytorch torch/autograd/functional.py (docstring examples of jacobian, hessian, vjp, jvp, hvp, vhp; modeled on them, rewritten for this corpus as one cell)
import torch
from torch.autograd.functional import jacobian, hessian, vjp, jvp, hvp, vhp

torch.manual_seed(0)


def exp_reducer(x):
    return x.exp().sum(dim=1)


inputs = torch.rand(2, 2)
print(jacobian(exp_reducer, inputs).shape)
J = jacobian(exp_reducer, inputs, create_graph=True)
print(J.requires_grad)


def exp_adder(x, y):
    return 2 * x.exp() + 3 * y


inputs = (torch.rand(2), torch.rand(2))
print([j.shape for j in jacobian(exp_adder, inputs)])


def pow_reducer(x):
    return x.pow(3).sum()


inputs = torch.rand(2, 2)
print(hessian(pow_reducer, inputs).shape)


def pow_adder_reducer(x, y):
    return (2 * x.pow(2) + 3 * y.pow(2)).sum()


inputs = (torch.rand(2), torch.rand(2))
print(hessian(pow_adder_reducer, inputs))

v = torch.ones(4)
inputs = torch.rand(4, 4)
out, vjp_out = vjp(exp_reducer, inputs, v)
print(out.shape, vjp_out.shape)

inputs = torch.rand(4, 4)
v = torch.ones(4, 4)
out, jvp_out = jvp(exp_reducer, inputs, v)
print(out.shape, jvp_out.shape)

inputs = torch.rand(4, 4)
v = torch.ones(4, 4)
out, hvp_out = hvp(pow_reducer, inputs, v)
out2, vhp_out = vhp(pow_reducer, inputs, v)
print(torch.allclose(hvp_out, vhp_out), torch.allclose(hvp_out, 6 * inputs))
