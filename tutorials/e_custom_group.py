# %% [markdown]
# # (e) Write your own group and action
# A group needs elements as batched tensors, `sample`, `identity`, `compose`, `inverse`, and how it acts
# on data and outputs. Here: the two-element group that mirrors molecules through the xy-plane (z -> -z).

# %%
import torch
from torch_geometric.data import Batch

from geoadapt import Spec
from geoadapt.data import load
from geoadapt.groups import Group
from geoadapt.groups.euclidean import act_matrix, act_output_matrix
from geoadapt.metrics import equivariance_error
from geoadapt.models import build


class MirrorZ(Group):
    """Z_2 acting as z -> -z. Elements: LongTensor of 0 (identity) or 1 (mirror)."""

    name = "MirrorZ"

    @property
    def is_finite(self) -> bool:
        return True

    def elements(self):
        return torch.tensor([0, 1])

    def sample(self, n, generator=None):
        return torch.randint(0, 2, (n,), generator=generator)

    def identity(self, n=1):
        return torch.zeros(n, dtype=torch.long)

    def compose(self, a, b):
        return (a + b) % 2

    def inverse(self, a):
        return a.clone()

    def matrix(self, g):
        diag = torch.ones(g.shape[0], 3, dtype=torch.float64)
        diag[:, 2] = 1 - 2 * g.double()
        return torch.diag_embed(diag)

    def act(self, g, data, spec):
        return act_matrix(data, spec, self.matrix(g), None, self.name)  # every irreps field, by its parity

    def act_output(self, g, y, spec, batch=None):
        return act_output_matrix(y, spec, self.matrix(g), batch)


# %%
group = MirrorZ()
batch = Batch.from_data_list(load("rdkit_nci5k", limit=8, progress=False).graphs)
a, b = group.sample_like(batch), group.sample_like(batch)  # one element per molecule
spec = Spec(fields={"pos": "1o"})
homomorphism = group.act(a, group.act(b, batch, spec), spec).pos - group.act(group.compose(a, b), batch, spec).pos
print("homomorphism error", float(homomorphism.abs().max()))
for name in ("e3nn_gnn", "naive_gnn"):
    model = build(name)
    print(name, "mirror error", float(equivariance_error(model, batch, group, model.spec, n_samples=None).max()))
