# Origin: pytorch/tutorials intermediate_source/optimizer_step_in_backward_tutorial.py (register_post_accumulate_grad_hook with one optimizer per parameter; modeled on it, rewritten for this corpus: a small MLP instead of ViT, random data, CPU, no memory snapshots)
import torch
import torch.nn as nn

torch.manual_seed(0)

model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 4))


def fake_data():
    return torch.randn(8, 16), torch.randint(0, 4, (8,))


# The usual train loop first
optimizer = torch.optim.Adam(model.parameters())


def train(model, optimizer):
    # create our fake image input: tensor shape is batch_size, features
    inputs, targets = fake_data()
    # call our forward and backward
    loss = nn.functional.cross_entropy(model.forward(inputs), targets)
    loss.backward()
    # call our optimizer
    optimizer.step()
    optimizer.zero_grad()
    return loss


for _ in range(3):
    print(round(train(model, optimizer).item(), 5))

# Instead of having just *one* optimizer, we will have a ``dict`` of optimizers
# for every parameter so we could reference them in our hook.
optimizer_dict = {p: torch.optim.Adam([p], foreach=False) for p in model.parameters()}


# Define our hook, which will call the optimizer ``step()`` and ``zero_grad()``
def optimizer_hook(parameter) -> None:
    optimizer_dict[parameter].step()
    optimizer_dict[parameter].zero_grad()


# Register the hook onto every parameter
for p in model.parameters():
    p.register_post_accumulate_grad_hook(optimizer_hook)


# Now remember our previous ``train()`` function? Since the optimizer has been
# fused into the backward, we can remove the optimizer step and zero_grad calls.
def train(model):
    inputs, targets = fake_data()
    loss = nn.functional.cross_entropy(model.forward(inputs), targets)
    loss.backward()
    # optimizer update --> no longer needed!
    return loss


for _ in range(3):
    print(round(train(model).item(), 5))
print(all(p.grad is None for p in model.parameters()))
