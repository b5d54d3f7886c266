# Origin: pytorch/pytorch docs/source/notes/autograd.rst ("Backward Hooks execution", "Hooks for saved tensors") and the torch.Tensor.register_hook / retain_grad docstrings; modeled on them, rewritten for this corpus
import torch
import torch.nn as nn

torch.manual_seed(0)

# Tensor.register_hook: the hook may return a replacement gradient
v = torch.tensor([0., 0., 0.], requires_grad=True)
h = v.register_hook(lambda grad: grad * 2)  # double the gradient
v.backward(torch.tensor([1., 2., 3.]))
print(v.grad)
h.remove()  # removes the hook

# retain_grad on a non-leaf
a = torch.randn(3, requires_grad=True)
b = a * 2
b.retain_grad()
c = (b ** 2).sum()
c.backward()
print(torch.allclose(b.grad, 2 * b), torch.allclose(a.grad, 8 * a))

# hooks on intermediate tensors, kept in a dict
grads = {}


def save_grad(name):
    def hook(grad):
        grads[name] = grad
    return hook


x = torch.randn(4, requires_grad=True)
y = 3 * x
z = y * y
y.register_hook(save_grad('y'))
z.register_hook(save_grad('z'))
s = z.sum()
s.backward()
print(grads['y'], grads['z'])

# Module forward / full backward hooks
model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
activations = {}


def forward_hook(module, input, output):
    activations[type(module).__name__] = output.detach()


def backward_hook(module, grad_input, grad_output):
    print('backward', type(module).__name__, [g.shape for g in grad_output])


handles = [model[0].register_forward_hook(forward_hook),
           model[2].register_full_backward_hook(backward_hook)]
out = model(torch.randn(5, 4))
out.sum().backward()
for handle in handles:
    handle.remove()
print(sorted(activations))


# Hooks for saved tensors
def pack_hook(x):
    print("Packing", tuple(x.shape))
    return x


def unpack_hook(x):
    print("Unpacking", tuple(x.shape))
    return x


a = torch.ones(5, requires_grad=True)
b = torch.ones(5, requires_grad=True) * 2
with torch.autograd.graph.saved_tensors_hooks(pack_hook, unpack_hook):
    y = a * b
y.sum().backward()
print(a.grad)

# Registering hooks on a saved tensor
x = torch.randn(5, requires_grad=True)
y = x.pow(2)
y.grad_fn._raw_saved_self.register_hooks(lambda t: t * 1, lambda t: t)
y.sum().backward()
print(torch.allclose(x.grad, 2 * x))
