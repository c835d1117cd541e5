"""The EMT target structures and the source-like crystals: what they hold, their labels, their seeds."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

from geoadapt.data.emt import EMT_METALS, KINDS, emt_structures, isolated_atoms
from geoadapt.data.source_like import MIN_ATOMS, PROTOTYPES, prototypes, source_like_structures


def test_emt_structures_are_the_kinds_in_turn_labelled_by_emt():
    frames = emt_structures(8, seed=1, elements=("Cu", "Au"))
    assert [a.info["config_type"] for a in frames] == [*KINDS, *KINDS]
    for atoms in frames:
        assert atoms.pbc.all() and set(atoms.get_chemical_symbols()) <= {"Cu", "Au"} and atoms.calc is None
        again = atoms.copy()
        again.calc = EMT()  # the labels, recomputed by hand
        assert again.get_potential_energy() == pytest.approx(atoms.info["REF_energy"], abs=1e-10)
        np.testing.assert_allclose(again.get_forces(), atoms.arrays["REF_forces"], atol=1e-10)
        np.testing.assert_allclose(again.get_stress(), atoms.info["REF_stress"], atol=1e-12)
    bulk_, alloy, vacancy, surface = frames[:4]
    assert len(bulk_) in (4, 8) and len(set(alloy.numbers)) == 2 and len(vacancy) == 7
    assert surface.cell.lengths()[2] > 9 + np.ptp(surface.positions[:, 2])  # a vacuum layer of about 10 Å
    cubic = bulk_.cell.array / np.diag(bulk_.cell.array).mean()
    assert np.abs(cubic - np.diag(np.diag(cubic))).max() > 1e-4  # strained: not a cubic cell any more
    assert all(np.allclose(a.positions, b.positions) for a, b in zip(frames, emt_structures(8, 1, ("Cu", "Au"))))


def test_isolated_atoms_and_bad_requests():
    frames = isolated_atoms(("Cu", "Ni"))
    assert [a.info["config_type"] for a in frames] == ["IsolatedAtom"] * 2 and all(len(a) == 1 for a in frames)
    with pytest.raises(ValueError, match="elements: expected some of EMT's fcc metals"):
        emt_structures(2, elements=("Fe",))
    with pytest.raises(ValueError, match="count: expected a whole number >= 1, got 0"):
        emt_structures(0)
    assert set(EMT_METALS) == {"Al", "Cu", "Ni", "Pd", "Ag", "Pt", "Au"}


def test_source_like_crystals_leave_out_the_target_elements_and_balance_the_prototypes():
    kept = prototypes(exclude=EMT_METALS)
    frames = source_like_structures(len(kept) + 3, exclude=EMT_METALS, seed=0)
    assert not {"Al", "Cu", "Ni", "Pd", "Ag", "Pt", "Au"} & {s for a in frames for s in a.get_chemical_symbols()}
    names = [a.info["config_type"] for a in frames]
    assert sorted(names[: len(kept)]) == sorted(p.name for p in kept)  # every prototype once before repeats
    assert all(len(a) >= MIN_ATOMS and a.pbc.all() for a in frames)
    assert {p.kind for p in kept} >= {"bcc", "hcp", "rocksalt", "perovskite", "rutile", "wurtzite"}
    oxygen_free = prototypes(exclude=["O", 26])
    assert not any("O" in a.get_chemical_symbols() for a in source_like_structures(30, ["O", 26], seed=1))
    assert len(oxygen_free) < len(PROTOTYPES) and "Fe bcc" not in {p.name for p in oxygen_free}
    again = source_like_structures(len(kept) + 3, exclude=EMT_METALS, seed=0)
    assert all(np.allclose(a.positions, b.positions) for a, b in zip(frames, again))


def test_excluding_every_prototype_is_one_clear_error():
    every = sorted({z for p in PROTOTYPES for z in p.elements})
    with pytest.raises(ValueError, match="exclude: expected some prototype left without elements"):
        source_like_structures(3, exclude=every)
    with pytest.raises(ValueError, match="exclude: expected element symbols or atomic numbers, got 'Xx'"):
        prototypes(exclude=["Xx"])
