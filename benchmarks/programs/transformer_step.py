# One training step of a 2-block transformer encoder with a linear head, after the PyTorch tutorial "Language
# Modeling with nn.Transformer" (https://pytorch.org/tutorials/beginner/transformer_tutorial.html:
# TransformerEncoder of TransformerEncoderLayer, a Linear decoder), shrunk to d_model 16, nhead 2, and Adam.
import torch
from torch import nn

torch.manual_seed(0)
tokens = torch.randn(2, 5, 16)  # batch 2, sequence 5, d_model 16 (embeddings of the tutorial's tokens)
targets = torch.tensor([[1, 0, 3, 2, 1], [0, 2, 3, 1, 0]])
layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
head = nn.Linear(16, 4)
opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)
opt.zero_grad()
logits = head(encoder(tokens))
loss = nn.functional.cross_entropy(logits.reshape(-1, 4), targets.reshape(-1))
loss.backward()
opt.step()
