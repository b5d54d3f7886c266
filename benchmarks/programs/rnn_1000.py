# A tanh RNN unrolled over 1,000 steps, after d2l.ai "Recurrent Neural Network Implementation from Scratch"
# (https://d2l.ai/chapter_recurrent-neural-networks/rnn-scratch.html: H = tanh(X W_xh + H W_hh + b_h)),
# written as h = tanh(W h + U x) on one sequence, a squared-error loss on the last state, one backward pass.
import torch

torch.manual_seed(0)
W = (0.1 * torch.randn(8, 8)).requires_grad_()
U = (0.1 * torch.randn(8, 3)).requires_grad_()
xs = torch.randn(1000, 3)
h = torch.zeros(8)
for t in range(1000):
    h = torch.tanh(W @ h + U @ xs[t])
loss = (h ** 2).sum()
loss.backward()
