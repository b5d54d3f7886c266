# Origin: d2l-ai/d2l-en chapter_multilayer-perceptrons/mlp-scratch.md (d2l 2.0 PyTorch version; modeled on it, rewritten for this corpus: random data, 2 epochs, 64 hidden units)
import torch
from torch import nn

torch.manual_seed(0)

batch_size = 32
train_iter = [(torch.rand(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))) for _ in range(4)]

num_inputs, num_outputs, num_hiddens = 784, 10, 64

W1 = nn.Parameter(torch.randn(
    num_inputs, num_hiddens, requires_grad=True) * 0.01)
b1 = nn.Parameter(torch.zeros(num_hiddens, requires_grad=True))
W2 = nn.Parameter(torch.randn(
    num_hiddens, num_outputs, requires_grad=True) * 0.01)
b2 = nn.Parameter(torch.zeros(num_outputs, requires_grad=True))

params = [W1, b1, W2, b2]


def relu(X):
    a = torch.zeros_like(X)
    return torch.max(X, a)


def net(X):
    X = X.reshape((-1, num_inputs))
    H = relu(X@W1 + b1)  # Here '@' stands for matrix multiplication
    return (H@W2 + b2)


loss = nn.CrossEntropyLoss(reduction='none')

num_epochs, lr = 2, 0.1
updater = torch.optim.SGD(params, lr=lr)
for epoch in range(num_epochs):
    total = 0.0
    for X, y in train_iter:
        y_hat = net(X)
        l = loss(y_hat, y)
        updater.zero_grad()
        l.mean().backward()
        updater.step()
        total += float(l.sum())
    print(epoch + 1, round(total / (batch_size * len(train_iter)), 4))
