"""Your own model: declared with ``wrap``, adapted, trained, saved and loaded back (by class path or a builder)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.utils import scatter

from geoadapt.checkpoints import load, save
from geoadapt.models import custom, wrap
from geoadapt.models.geometry import radius_edges
from geoadapt.models.potential import potential
from geoadapt.spec import Spec
from geoadapt.train import Trainer

SPEC = Spec(fields={"pos": "1o"}, output="0e")


class DistanceEnergy(nn.Module):
    """A small PyG energy model nobody registered: an MLP of Gaussian-expanded neighbour distances."""

    def __init__(self, hidden: int = 16, cutoff: float = 3.0) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("centers", torch.linspace(0.5, cutoff, 8))
        self.mlp = nn.Sequential(nn.Linear(8, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, data: Batch) -> Tensor:
        src, dst = radius_edges(data.pos.detach(), data.batch, self.cutoff)
        d = (data.pos[src] - data.pos[dst]).norm(dim=-1, keepdim=True)
        pair = self.mlp(torch.exp(-4 * (d - self.centers).pow(2)))
        return scatter(pair, data.batch[src], dim=0, dim_size=int(data.num_graphs), reduce="sum")


def graphs(count: int = 8) -> list[Data]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for k in range(count):
        pos = 1.2 * torch.randn(5 + k % 2, 3, generator=generator)
        centered = pos - pos.mean(0)
        # Labels of a harmonic well: E = sum |r|^2 / 2 about the centroid, F = -(r - mean).
        out.append(Data(pos=pos, energy=0.5 * centered.pow(2).sum().reshape(1, 1), force=-centered))
    return out


def test_wrapped_model_adapts_saves_and_loads_back(tmp_path):
    model = wrap(DistanceEnergy(hidden=12), SPEC, symmetry="Permutation x E3", init={"hidden": 12})
    trainer = Trainer(model, "potential", strategy="lora", max_epochs=2, groups=[], progress=False)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f"mlp.{i}.{w}" for i in (0, 2) for w in ("down", "up")
    }
    trainer.fit(DataLoader(graphs(), batch_size=4))
    path = save(trainer.model, tmp_path / "mine.pt")
    batch = Batch.from_data_list(graphs(3))
    expected = potential(trainer.model, batch)
    for loaded in (load(path), load(path, builder=lambda **init: DistanceEnergy(**init))):
        assert isinstance(loaded, DistanceEnergy) and loaded.mlp[0].base.out_features == 12
        assert loaded.spec == SPEC and loaded.symmetry == "Permutation x E3"
        assert [s["strategy"] for s in loaded.adaptations] == ["lora"]
        out = potential(loaded, batch)
        assert torch.equal(out.energy, expected.energy) and torch.equal(out.forces, expected.forces)


def test_unimportable_models_need_a_builder_and_bad_declarations_are_named(tmp_path):
    class Local(DistanceEnergy):
        pass

    path = save(wrap(Local(), SPEC), tmp_path / "local.pt")
    assert isinstance(load(path), Local)  # wrapped in this process: registered, so it loads without trust
    custom.REGISTERED.pop(custom.class_path(Local))  # as in a fresh process
    with pytest.raises(ValueError, match=r"asks to import and call '.*Local'.*trust_code=True"):
        load(path)
    with pytest.raises(ValueError, match=r"expected an importable class at .*Local.*pass load\(path, builder=\.\.\.\)"):
        load(path, trust_code=True)
    assert isinstance(load(path, builder=Local), Local)
    with pytest.raises(TypeError, match="spec: expected a geoadapt.Spec, got dict"):
        wrap(DistanceEnergy(), {"pos": "1o"})
    with pytest.raises(ValueError, match="expected a backbone made by geoadapt.models.build or declared with"):
        save(DistanceEnergy(), tmp_path / "plain.pt")
