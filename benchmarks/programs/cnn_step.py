# One training step of a small MNIST CNN, after pytorch/examples mnist/main.py
# (https://github.com/pytorch/examples/blob/main/mnist/main.py: Conv2d -> relu -> max_pool2d -> flatten -> Linear),
# cut to one conv layer, with CrossEntropyLoss and SGD; a random batch of 4 MNIST-shaped 1x28x28 images.
import torch
from torch import nn

torch.manual_seed(0)
images = torch.randn(4, 1, 28, 28)
labels = torch.tensor([3, 1, 4, 1])
model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(8 * 14 * 14, 10))
criterion = nn.CrossEntropyLoss()
opt = torch.optim.SGD(model.parameters(), lr=0.01)
opt.zero_grad()
loss = criterion(model(images), labels)
loss.backward()
opt.step()
