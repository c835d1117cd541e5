"""Energy models and their forces: autograd on positions, the node-level force view."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from geoadapt.groups import E3
from geoadapt.metrics import equivariance_error
from geoadapt.models.potential import Forces, autograd_potential, potential
from geoadapt.spec import Spec


class Springs(nn.Module):
    """``E = k sum_{i<j} |r_i - r_j|^2`` per graph: forces ``F_i = -2k sum_j (r_i - r_j)``."""

    spec = Spec(fields={"pos": "1o"}, output="0e")
    symmetry = "Permutation x E3"

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(0.7))

    def forward(self, data: Batch) -> Tensor:
        batch = data.batch
        n = torch.bincount(batch).to(data.pos.dtype)
        mean = scatter(data.pos, batch, dim=0, reduce="mean")
        # sum_{i<j} |r_i - r_j|^2 = n sum_i |r_i - mean|^2
        spread = scatter((data.pos - mean[batch]).pow(2).sum(-1), batch, dim=0, reduce="sum")
        return (self.k * n * spread).unsqueeze(-1)


def springs_batch() -> Batch:
    generator = torch.Generator().manual_seed(0)
    graphs = [Data(pos=torch.randn(n, 3, generator=generator)) for n in (3, 5)]
    return Batch.from_data_list(graphs)


def test_autograd_forces_equal_the_analytic_forces():
    model, batch = Springs(), springs_batch()
    out = autograd_potential(model, batch)
    expected = []
    for g in batch.to_data_list():
        diff = g.pos[:, None, :] - g.pos[None, :, :]
        expected.append(-2 * 0.7 * diff.sum(1))
    assert out.energy.shape == (2, 1) and torch.allclose(out.forces, torch.cat(expected), atol=1e-5)


def test_forces_keep_their_graph_only_when_gradients_are_recorded():
    model, batch = Springs(), springs_batch()
    with torch.no_grad():
        quiet = potential(model, batch)
    assert not quiet.forces.requires_grad and not quiet.energy.requires_grad
    loud = potential(model, batch)
    loud.forces.pow(2).sum().backward()  # a force loss trains the model
    assert model.k.grad is not None and float(model.k.grad) != 0.0


def test_force_view_is_a_node_level_vector_output():
    model, batch = Springs(), springs_batch()
    forces = Forces(model)
    assert forces.spec.output_level == "node" and forces.symmetry == model.symmetry
    error = equivariance_error(forces, batch, E3(), forces.spec, n_samples=4)
    assert error.shape == (4, 2) and float(error.max()) < 1e-5
    vector_model = Springs()
    vector_model.spec = Spec(fields={"pos": "1o"}, output="1o", output_level="node")
    with pytest.raises(ValueError, match="expected a graph-level energy '1x0e', got 1x1o at node level"):
        Forces(vector_model)
