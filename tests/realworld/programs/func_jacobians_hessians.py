# Origin: pytorch/tutorials intermediate_source/jacobians_hessians.py (modeled on it, rewritten for this corpus: D=16, batch of 4, no timing)
import torch
import torch.nn.functional as F
from functools import partial
from torch.func import vjp, vmap, jacrev, jacfwd, hessian

torch.manual_seed(0)


def predict(weight, bias, x):
    return F.linear(x, weight, bias).tanh()


D = 16
weight = torch.randn(D, D)
bias = torch.randn(D)
x = torch.randn(D)  # feature vector

primal = x.clone().requires_grad_()
cotangents = torch.eye(D)

# Computes the jacobian row by row with autograd
jacobian_rows = [torch.autograd.grad(predict(weight, bias, primal), primal, v)[0]
                 for v in cotangents.unbind()]
jacobian = torch.stack(jacobian_rows)

_, vjp_fn = vjp(partial(predict, weight, bias), x)
ft_jacobian, = vmap(vjp_fn)(cotangents)

# let's confirm both methods compute the same result
assert torch.allclose(ft_jacobian, jacobian)

ft_jacobian = jacrev(predict, argnums=2)(weight, bias, x)
assert torch.allclose(ft_jacobian, jacobian)

# note the change in input via ``argnums`` parameters of 0,1 to map to weight and bias
ft_jac_weight, ft_jac_bias = jacrev(predict, argnums=(0, 1))(weight, bias, x)
print(ft_jac_weight.shape, ft_jac_bias.shape)

jacfwd_result = jacfwd(predict, argnums=2)(weight, bias, x)
jacrev_result = jacrev(predict, argnums=2)(weight, bias, x)
print(torch.allclose(jacfwd_result, jacrev_result, atol=1e-6))

# Hessian computation with functorch.hessian
hess_api = hessian(predict, argnums=2)(weight, bias, x)
hess_fwdfwd = jacfwd(jacfwd(predict, argnums=2), argnums=2)(weight, bias, x)
hess_revrev = jacrev(jacrev(predict, argnums=2), argnums=2)(weight, bias, x)
print(torch.allclose(hess_api, hess_fwdfwd, atol=1e-5), torch.allclose(hess_api, hess_revrev, atol=1e-5))

# Batch Jacobian and Batch Hessian
batch_size = 4
Din = 8
Dout = 6

weight = torch.randn(Dout, Din)
bias = torch.randn(Dout)
x = torch.randn(batch_size, Din)

compute_batch_jacobian = vmap(jacrev(predict, argnums=2), in_dims=(None, None, 0))
batch_jacobian0 = compute_batch_jacobian(weight, bias, x)


def predict_with_output_summed(weight, bias, x):
    return predict(weight, bias, x).sum(0)


batch_jacobian1 = jacrev(predict_with_output_summed, argnums=2)(weight, bias, x).movedim(1, 0)
assert torch.allclose(batch_jacobian0, batch_jacobian1)

compute_batch_hessian = vmap(hessian(predict, argnums=2), in_dims=(None, None, 0))
batch_hess = compute_batch_hessian(weight, bias, x)
print(batch_hess.shape)


# Computing Hessian-vector products
def hvp(f, primals, tangents):
    return torch.func.jvp(torch.func.grad(f), primals, tangents)[1]


def f(x):
    return x.sin().sum()


x = torch.randn(128)
tangent = torch.randn(128)
result = hvp(f, (x,), (tangent,))
print(torch.allclose(result, -x.sin() * tangent, atol=1e-6))
