# Origin: pytorch/tutorials intermediate_source/parametrizations.py (Symmetric and MatrixExponential parametrizations via torch.nn.utils.parametrize, `original` / `cached()`; modeled on it, rewritten for this corpus: 4x4 layers and a short SGD loop added)
import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize

torch.manual_seed(0)


def symmetric(X):
    return X.triu() + X.triu(1).transpose(-1, -2)


X = torch.rand(3, 3)
A = symmetric(X)
assert torch.allclose(A, A.T)  # A is symmetric
print(A)


class LinearSymmetric(nn.Module):
    def __init__(self, n_features):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(n_features, n_features))

    def forward(self, x):
        A = symmetric(self.weight)
        return x @ A


layer = LinearSymmetric(3)
out = layer(torch.rand(8, 3))


class Symmetric(nn.Module):
    def forward(self, X):
        return X.triu() + X.triu(1).transpose(-1, -2)


layer = nn.Linear(4, 4)
parametrize.register_parametrization(layer, "weight", Symmetric())

A = layer.weight
assert torch.allclose(A, A.T)  # A is symmetric
print(layer)


class Skew(nn.Module):
    def forward(self, X):
        A = X.triu(1)
        return A - A.transpose(-1, -2)


cnn = nn.Conv2d(in_channels=5, out_channels=8, kernel_size=3)
parametrize.register_parametrization(cnn, "weight", Skew())
# Print a few kernels
print(cnn.weight[0, 1])


class MatrixExponential(nn.Module):
    def forward(self, X):
        return torch.matrix_exp(X)


layer_orthogonal = nn.Linear(3, 3)
parametrize.register_parametrization(layer_orthogonal, "weight", Skew())
parametrize.register_parametrization(layer_orthogonal, "weight", MatrixExponential())
X = torch.rand(3, 3)
Q = layer_orthogonal.weight
print(torch.dist(Q.T @ Q, torch.eye(3)) < 1e-5)

# Inspecting a parametrized module: the unconstrained tensor lives in `original`
print(type(layer.parametrizations.weight).__name__, layer.parametrizations.weight.original.shape)

# Gradients flow to `original` through the parametrization
opt = torch.optim.SGD(layer.parameters(), lr=0.1)
for step in range(3):
    x = torch.randn(6, 4)
    loss = (layer(x) - x.flip(1)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(step, round(loss.item(), 5))
print(torch.allclose(layer.weight, layer.weight.T))

# Caching the value of a parametrization
with parametrize.cached():
    foo = layer_orthogonal.weight + layer_orthogonal.weight.T
    bar = layer_orthogonal.weight.sum()
print(foo.shape, bar.requires_grad)

# Removing parametrizations, leaving the current value as a plain parameter
parametrize.remove_parametrizations(layer, "weight")
print(type(layer.weight).__name__, torch.allclose(layer.weight, layer.weight.T))
