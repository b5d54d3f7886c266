# Origin: pytorch/tutorials beginner_source/blitz/autograd_tutorial.py (modeled on it, rewritten for this corpus: torchvision resnet18 replaced by a small TinyResNet module with an `fc` head, random data, no torchvision)
import torch
from torch import nn, optim

torch.manual_seed(0)

# A small "pretrained" model stands in for torchvision's resnet18.
class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = x.mean(dim=(2, 3))
        return self.fc(x)


model = TinyResNet()
data = torch.rand(1, 3, 16, 16)
labels = torch.rand(1, 10)

prediction = model(data)
loss = (prediction - labels).sum()
loss.backward()

optim_ = optim.SGD(list(model.parameters()), lr=1e-2, momentum=0.9)
optim_.step()

# Differentiation in Autograd
a = torch.tensor([2., 3.], requires_grad=True)
b = torch.tensor([6., 4.], requires_grad=True)
Q = 3*a**3 - b**2
external_grad = torch.tensor([1., 1.])
Q.backward(gradient=external_grad)
print(9*a**2 == a.grad)
print(-2*b == b.grad)

# Exclusion from the DAG
x = torch.rand(5, 5)
y = torch.rand(5, 5)
z = torch.rand((5, 5), requires_grad=True)
a = x + y
print(f"Does `a` require gradients?: {a.requires_grad}")
b = x + z
print(f"Does `b` require gradients?: {b.requires_grad}")

# Freeze all the parameters, then replace the classifier head
for param in model.parameters():
    param.requires_grad = False
model.fc = nn.Linear(4, 10)
optimizer = optim.SGD(model.fc.parameters(), lr=1e-2, momentum=0.9)
prediction = model(data)
loss = (prediction - labels).sum()
loss.backward()
optimizer.step()
print(model.conv1.weight.grad is None, model.fc.weight.grad.shape)
