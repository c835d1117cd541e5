"""Replay: pseudolabels of the frozen model, mixed into training at a set ratio, and what that does to forgetting."""

from __future__ import annotations

import copy

import pytest
import torch
from ase.build import bulk, molecule
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from geoadapt.data.emt import emt_structures, label
from geoadapt.data.source_like import source_like_structures
from geoadapt.io import atoms_to_data, from_atoms
from geoadapt.models.potential import potential
from geoadapt.tasks.forgetting import forgetting, potential_errors
from geoadapt.train import Trainer
from geoadapt.train.replay import ReplayLoader, mix, pseudolabel
from tests.models.pair_potential import LennardJones

TARGET = ("Cu", "Au")


def pair_model() -> LennardJones:
    """A pair potential that knows the target and the source-like elements (the pair term ignores the element)."""
    return LennardJones(epsilon=0.3, sigma=2.3, elements=tuple(range(1, 84)))


def target_graphs(count: int = 8, seed: int = 0) -> list:
    return from_atoms(emt_structures(count, seed=seed, elements=TARGET), source="emt").graphs


def source_like(count: int, seed: int) -> list:
    return source_like_structures(count, exclude=TARGET, seed=seed)


def test_pseudolabels_are_the_models_own_energies_forces_and_stresses():
    model, structures = pair_model(), source_like(5, seed=0)
    labelled = pseudolabel(model, structures, batch_size=2)
    assert len(labelled) == 5 and model.training  # left in the mode it was in
    for atoms, graph in zip(structures, labelled):
        out = potential(model, Batch.from_data_list([atoms_to_data(atoms)]), stress=True)  # one at a time, by hand
        torch.testing.assert_close(graph.energy, out.energy.reshape(1, 1))
        torch.testing.assert_close(graph.y, graph.energy)
        torch.testing.assert_close(graph.force, out.forces)
        torch.testing.assert_close(graph.stress, out.stress.reshape(1, 3, 3))
        assert graph.force.abs().max() > 0  # rattled cells of 4 atoms or more: forces are not fixed by symmetry
    errors = forgetting(model, labelled)  # batched otherwise than the labelling: float32 round-off only
    assert set(errors) == {"energy_mae", "force_mae", "force_rmse", "stress_mae"} and max(errors.values()) < 1e-4


def test_molecules_get_no_stress_and_asking_for_one_is_an_error():
    water = molecule("H2O")
    (graph,) = pseudolabel(pair_model(), [water])
    assert graph.get("stress") is None and graph.force.shape == (3, 3)
    with pytest.raises(ValueError, match="stress: expected structures periodic in 3D, got structure 1 not"):
        pseudolabel(pair_model(), [bulk("Fe", "bcc", a=2.87, cubic=True), water], stress=True)


@pytest.mark.parametrize("ratio, batch_size", [(0.25, 4), (0.5, 3), (0.1, 2)])
def test_the_replay_share_of_every_epoch_is_the_ratio(ratio, batch_size):
    targets = target_graphs(12)
    replay = pseudolabel(pair_model(), source_like(5, seed=1))
    loader = ReplayLoader(DataLoader(targets, batch_size=batch_size), replay, ratio)
    torch.manual_seed(0)
    batches = list(loader)
    plain = list(DataLoader(targets, batch_size=batch_size))
    assert len(batches) == len(loader) == len(plain)
    drawn = []
    for mixed, alone in zip(batches, plain):
        torch.testing.assert_close(mixed.energy[: alone.num_graphs], alone.energy)  # the targets first, as they were
        for graph in mixed.to_data_list()[alone.num_graphs :]:
            drawn += [i for i, r in enumerate(replay) if torch.equal(r.force, graph.force)]
    assert len(drawn) == round(12 * ratio / (1 - ratio))  # fractions carry over: exact over the epoch
    first = drawn[: len(replay)]
    assert len(set(first)) == len(first)  # without replacement: no graph again before all were used


def test_a_seeded_epoch_repeats_and_ratio_zero_is_the_plain_loader():
    targets, replay = target_graphs(8), pseudolabel(pair_model(), source_like(6, seed=1))
    loader = ReplayLoader(DataLoader(targets, batch_size=4), replay, 0.5)
    torch.manual_seed(3)
    first = [b.energy for b in loader]
    torch.manual_seed(3)
    again = [b.energy for b in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    plain = [b.energy for b in ReplayLoader(DataLoader(targets, batch_size=4), replay, 0.0)]
    assert all(torch.equal(a, b.energy) for a, b in zip(plain, DataLoader(targets, batch_size=4)))


def test_molecules_mix_with_crystals_and_missing_fields_are_named():
    water = molecule("H2O")
    water.rattle(0.05, seed=0)
    molecules = pseudolabel(pair_model(), [water])
    crystals = pseudolabel(pair_model(), source_like(2, seed=0), stress=False)
    batch = mix(molecules, crystals)
    assert batch.num_graphs == 3 and batch.cell.shape == (3, 3, 3) and not batch.pbc[0].any()
    assert torch.equal(batch.cell[0], torch.zeros(3, 3)) and batch.pbc[1:].all()
    with_stress = from_atoms([label(bulk("Cu", "fcc", a=3.6, cubic=True))]).graphs
    expected = "replay: expected the fields of the training graphs on the replay graphs, got no 'stress'"
    with pytest.raises(ValueError, match=expected):
        mix(with_stress, crystals)
    with pytest.raises(ValueError, match=r"ratio: expected a share of replay graphs in \[0, 1\), got 1.0"):
        ReplayLoader(DataLoader(with_stress), crystals, 1.0)
    with pytest.raises(ValueError, match="replay: expected labelled graphs to mix in at ratio 0.25, got none"):
        ReplayLoader(DataLoader(with_stress), [], 0.25)
    loader = ReplayLoader(DataLoader(with_stress), crystals, 0.25)
    assert getattr(loader, "dataset", None) is None  # no dataset to rebuild a loader from (and lose the replay)
    with pytest.raises(AttributeError, match="sharding across processes rebuilds a loader from its dataset"):
        _ = loader.dataset


def adapted(source: LennardJones, replay: list | None, epochs: int = 6) -> LennardJones:
    """The pair potential fitted to EMT's Cu and Au structures, with or without replay."""
    torch.manual_seed(0)
    loader = DataLoader(target_graphs(16), batch_size=4, shuffle=True)
    loader = ReplayLoader(loader, replay, 0.5) if replay else loader
    # The pair potential's energy shift stays as it is: the network alone moves away from its own labels.
    options = {"refit_shift": False}
    trainer = Trainer(
        copy.deepcopy(source), "potential", groups=[], max_epochs=epochs, lr=0.05, progress=False, task_options=options
    )
    trainer.fit(loader)
    return trainer.model


def test_replay_keeps_the_model_nearer_its_own_labels_in_the_trainer():
    source = pair_model()
    replay = pseudolabel(source, source_like(16, seed=1))
    held_out = pseudolabel(source, source_like(8, seed=2))
    plain, replayed = adapted(source, None), adapted(source, replay)
    moved = forgetting(plain, held_out)["force_mae"]
    assert moved > 1.0  # meV/Å: fitting EMT moved the pair potential away from its own labels
    assert forgetting(replayed, held_out)["force_mae"] < 0.5 * moved
    target = target_graphs(8, seed=5)
    assert potential_errors(replayed, target)["force_mae"] < potential_errors(source, target)["force_mae"]
