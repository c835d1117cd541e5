"""The potential task: joint energy + force loss, metrics in meV/atom and eV/Å, force equivariance, shift refit."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from geoadapt.dtypes import default_dtype
from geoadapt.groups import O3, SO3
from geoadapt.models.potential import potential
from geoadapt.regularizers import EquivarianceRegularizer
from geoadapt.spec import Spec
from geoadapt.tasks import Potential, PotentialLoss, force_spec
from geoadapt.train import Trainer

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


class PairPotential(nn.Module):
    """``E = a sum_{i<j} (|r_i - r_j| - r0)^2 + c det(r_1 - r_0, r_2 - r_0, r_3 - r_0)`` per graph.

    ``c = 0``: E(3)-invariant energy. ``c != 0``: the determinant is a pseudo-scalar, so the energy and
    forces of a mirror image are wrong (rotations still fine).
    """

    spec = Spec(fields={"pos": "1o"}, output="0e")
    symmetry = "Permutation x E3"

    def __init__(self, a: float = 0.5, r0: float = 1.0, chirality: float = 0.0) -> None:
        super().__init__()
        self.a, self.r0 = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(r0))
        self.c = nn.Parameter(torch.tensor(chirality), requires_grad=chirality != 0)

    def forward(self, data: Batch) -> Tensor:
        energies = []
        for g in range(int(data.num_graphs)):
            pos = data.pos[data.batch == g]
            i, j = torch.triu_indices(len(pos), len(pos), 1)
            d = (pos[i] - pos[j]).norm(dim=-1)
            energy = self.a * (d - self.r0).pow(2).sum()
            energy = energy + self.c * torch.linalg.det((pos[1:4] - pos[0]).T)
            energies.append(energy)
        return torch.stack(energies).unsqueeze(-1)


def labelled(model: nn.Module, count: int, seed: int) -> list[Data]:
    generator = torch.Generator().manual_seed(seed)
    graphs = []
    for k in range(count):
        n = 4 + k % 3
        graph = Data(pos=1.5 * torch.randn(n, 3, generator=generator), z=torch.ones(n, dtype=torch.long))
        out = potential(model, Batch.from_data_list([graph]))
        graph.energy, graph.force = out.energy.detach(), out.forces.detach()
        graphs.append(graph)
    return graphs


@pytest.fixture
def float64():
    with default_dtype(torch.float64):
        yield


def loaders(truth: nn.Module) -> tuple[DataLoader, DataLoader]:
    return (
        DataLoader(labelled(truth, 24, seed=0), batch_size=8, shuffle=True),
        DataLoader(labelled(truth, 12, seed=1), batch_size=6),
    )


def test_potential_task_fits_energies_and_forces_and_reports_them_in_mev_and_ev_per_angstrom(float64):
    truth = PairPotential(a=1.3, r0=1.1)
    train, val = loaders(truth)
    model = PairPotential()
    trainer = Trainer(model, Potential(force_weight=10.0), max_epochs=40, lr=0.05, groups=[], progress=False)
    before = trainer.evaluate(val)
    history = trainer.fit(train, val)
    after = history[-1]
    assert after["val_force_rmse"] < before["force_rmse"] / 10
    assert float(model.a) == pytest.approx(1.3, abs=0.05) and float(model.r0) == pytest.approx(1.1, abs=0.05)
    # Metrics by hand: energy MAE per atom in meV, force RMSE / MAE in eV/Å.
    metrics = trainer.evaluate(val)
    energy_err, force_err = [], []
    for batch in val:
        for g in batch.to_data_list():
            out = potential(model, Batch.from_data_list([g]))
            energy_err.append(abs(float(out.energy) - float(g.energy)) / g.num_nodes)
            force_err.append((out.forces - g.force).reshape(-1))
    force_err = torch.cat(force_err)
    assert metrics["energy_mae"] == pytest.approx(1000 * sum(energy_err) / len(energy_err), rel=1e-6)
    assert metrics["force_rmse"] == pytest.approx(float(force_err.pow(2).mean().sqrt()), rel=1e-6)
    assert metrics["force_mae"] == pytest.approx(float(force_err.abs().mean()), rel=1e-6)


def test_loss_weights_energy_per_atom_and_force_components(float64):
    graphs = labelled(PairPotential(a=1.3), 3, seed=2)
    batch = Batch.from_data_list(graphs)
    model = PairPotential()
    out = potential(model, batch)
    n = torch.tensor([[g.num_nodes] for g in graphs], dtype=torch.float64)
    energy_term = ((out.energy - batch.energy) / n).pow(2).mean()
    force_term = (out.forces - batch.force).pow(2).mean()
    loss = PotentialLoss(energy_weight=2.0, force_weight=0.5)(out.energy, out.forces, batch)
    assert float(loss) == pytest.approx(float(2.0 * energy_term + 0.5 * force_term), rel=1e-12)
    with pytest.raises(ValueError, match="energy_weight, force_weight: expected at least one > 0"):
        PotentialLoss(0.0, 0.0)
    del batch.force
    with pytest.raises(ValueError, match="expected batches with field 'force'"):
        PotentialLoss()(out.energy, out.forces, batch)


def test_force_equivariance_is_measured_every_epoch_and_regularized(float64):
    train, val = loaders(PairPotential(a=1.3, r0=1.1))
    chiral = PairPotential(chirality=0.3)
    # By hand: forces of the mirror image -x against the mirrored forces -F(x).
    batch = next(iter(val))
    mirrored = batch.clone()
    mirrored.pos = -batch.pos
    forces, forces_mirror = potential(chiral, batch).forces, potential(chiral, mirrored).forces
    assert float((forces_mirror + forces).norm() / forces.norm()) > 1e-3
    spec = force_spec(chiral.spec)
    trainer = Trainer(
        chiral, "potential", [EquivarianceRegularizer(O3(), spec)], groups=[SO3(), O3()], max_epochs=2, progress=False
    )
    history = trainer.fit(train, val)
    for row in history:
        assert row["val_equivariance_error/SO3"] < 1e-10
        assert row["val_equivariance_error/O3"] > 1e-4
        assert row["train_penalty/O3"] > 0
    achiral = Trainer(
        PairPotential(), "potential", [EquivarianceRegularizer(O3(), spec)], groups=[O3()], max_epochs=1, progress=False
    )
    row = achiral.fit(train, val)[-1]
    assert row["val_equivariance_error"] < 1e-10 and row["train_penalty/O3"] < 1e-20


def test_shift_refit_is_refused_for_models_without_a_per_element_shift(float64):
    train, _ = loaders(PairPotential())
    options = {"refit_shift": True}
    trainer = Trainer(PairPotential(), "potential", max_epochs=1, groups=[], progress=False, task_options=options)
    with pytest.raises(ValueError, match="refit_shift: expected a model with a per-element energy shift"):
        trainer.fit(train)
    with pytest.raises(ValueError, match="potential task: expected a model whose output is a graph-level energy"):
        force_spec(Spec(fields={"pos": "1o"}, output="1o", output_level="node"))


# --- SevenNet-0 ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sevennet():
    from geoadapt.models import build

    return build("sevennet_0")


@pytest.fixture(scope="module")
def ethanol():
    from geoadapt.data.potentials import load_md17

    frames = load_md17("ethanol").graphs
    return DataLoader(frames[:8], batch_size=4, shuffle=True), DataLoader(frames[8:12], batch_size=4)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@needs_sevenn
@pytest.mark.parametrize(
    "strategy, options",
    [("finetune", {}), ("freeze", {"patterns": ("net.0_*", "net.1_*")}), ("lora", {})],
)
def test_sevennet_constants_stay_frozen_under_every_strategy(sevennet, ethanol, strategy, options):
    model = copy.deepcopy(sevennet)
    total = sum(p.numel() for p in model.parameters())
    constants = {n: p.detach().clone() for n, p in model.named_parameters() if n in model.frozen_parameter_names}
    constant_size = sum(p.numel() for p in constants.values())
    trainer = Trainer(model, "potential", strategy=strategy, strategy_options=options, max_epochs=1, groups=[])
    trainable = count(trainer.model)
    names = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert not names & set(model.frozen_parameter_names)
    if strategy == "finetune":
        assert trainable == total - constant_size
    elif strategy == "lora":
        assert 0 < trainable < 0.03 * total
    else:
        assert 0 < trainable < total - constant_size
    trainer.fit(ethanol[0])
    params = dict(trainer.model.named_parameters())
    for name, value in constants.items():
        if name.endswith("rescale_atomic_energy.shift"):
            continue  # refitted by least squares before training, never by the optimizer
        assert torch.equal(params[name], value), name


@needs_sevenn
def test_sevennet_potential_task_refits_the_shift_and_measures_force_symmetry(sevennet, ethanol):
    model = copy.deepcopy(sevennet)
    trainer = Trainer(model, "potential", strategy="lora", groups=["se3", "o3"], max_epochs=1, progress=False)
    before = trainer.evaluate(ethanol[1])
    row = trainer.fit(*ethanol)[-1]
    refit = trainer.task.shift_refit
    assert refit is not None and refit.mae_after < 0.01  # eV/atom on MD17's reference
    assert before["energy_mae"] > 1e5 and row["val_energy_mae"] < 30  # meV/atom
    assert row["val_equivariance_error/SE3(scale=1.0)"] <= 1e-4
    assert row["val_equivariance_error/O3"] > 1e-3
