# Origin: pytorch/pytorch docs/source/notes/autograd.rst ("In-place operations with autograd", "In-place correctness checks") and docs/source/tensor_view.rst (views share storage; modifying a view in place rebases the graph); modeled on them, rewritten for this corpus
import torch

torch.manual_seed(0)

# In-place ops on a non-leaf are recorded; backward goes through them
a = torch.randn(4, requires_grad=True)
b = a * 2
b.add_(1)
b.mul_(3)
b.sum().backward()
print(a.grad)

# Modifying a view in place: the base's grad_fn is rewritten (CopySlices)
x = torch.randn(3, 4, requires_grad=True)
y = x.clone()
row = y[1]            # a view of y
row.mul_(10)          # in-place on the view
col = y[:, 2]
col.exp_()
print(type(y.grad_fn).__name__, row._base is y)
y.sum().backward()
print(x.grad)

# view / transpose / narrow / unsqueeze keep the graph and share storage
w = torch.arange(6.0, requires_grad=True)
v = w.view(2, 3).t().narrow(0, 1, 2).unsqueeze(0)
(v * v).sum().backward()
print(w.grad)

# In-place correctness checks: the version counter catches a saved tensor changed in place
c = torch.randn(5, requires_grad=True)
d = c.sigmoid()        # sigmoid saves its output for backward
d.mul_(2)              # modifies the saved output in place
try:
    d.sum().backward()
except RuntimeError as err:
    print('RuntimeError:', 'modified by an inplace operation' in str(err))

# The same edit done out of place is fine
c.grad = None
e = c.sigmoid()
e = e * 2
e.sum().backward()
print(torch.allclose(c.grad, 2 * c.sigmoid() * (1 - c.sigmoid())))

# In-place update of a leaf inside torch.no_grad(), as optimizers do, and .data
p = torch.ones(3, requires_grad=True)
loss = (p ** 2).sum()
loss.backward()
with torch.no_grad():
    p.sub_(0.1 * p.grad)
p.grad.zero_()
p.data.mul_(2)
print(p, p.grad, p._version)

# Views of a leaf that requires grad cannot be modified in place outside no_grad
try:
    p[0].add_(1)
except RuntimeError as err:
    print('RuntimeError:', 'leaf Variable' in str(err))

# detach() shares storage: in-place on the detached tensor bumps the version seen by autograd
q = torch.randn(3, requires_grad=True)
r = q.exp()
r_det = r.detach()
r_det.zero_()
try:
    r.sum().backward()
except RuntimeError as err:
    print('RuntimeError:', 'inplace' in str(err))
