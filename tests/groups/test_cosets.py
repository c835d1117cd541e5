"""Cosets: every measurement over ``copies >= num_cosets`` sees each component of the group."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_add_pool, global_mean_pool

from geoadapt import Spec
from geoadapt.featurize import smiles_to_data
from geoadapt.groups import E3, O3, SE3, SO3, Cyclic, Dihedral, Group, Permutation, SignFlip, Translation
from geoadapt.structure import graph_index, num_graphs, repeat, to_dtype
from geoadapt.testing import assert_equivariant

SPEC = Spec(fields={"pos": "1o"}, output="0e")
CHIRAL = [
    "C[C@@H](N)C(=O)O",
    "C[C@H](O)CC",
    "OC[C@H](O)[C@@H](O)C=O",
    "N[C@@H](Cc1ccccc1)C(=O)O",
    "C[C@@H]1CCCC[C@H]1N",
]


@pytest.fixture(scope="module")
def chiral() -> Batch:
    """Five chiral molecules (heavy atoms, rdkit conformers), float64: their pseudoscalars are far from zero."""
    return to_dtype(Batch.from_data_list([smiles_to_data(s, seed=2)[0] for s in CHIRAL]), torch.float64)


class ChiralModel(nn.Module):
    """E(3) x permutation invariant up to sign: ``det[m1, m2, m3]``, ``m_k = Σ_i sin(k (|r_i| + a·x_i)) r_i``
    (``r_i`` positions about the centroid, ``x_i`` atom features), which flips sign under reflections.
    A pseudoscalar (``0o``) that a Spec wrongly calls ``0e``."""

    def forward(self, data: Batch) -> Tensor:
        batch, n = graph_index(data), num_graphs(data)
        rel = data.pos - global_mean_pool(data.pos, batch, n)[batch]
        phase = (
            rel.norm(dim=1, keepdim=True)
            + data.x @ torch.linspace(0.5, 2.0, data.x.shape[1], dtype=data.x.dtype)[:, None]
        )
        moments = [global_add_pool(torch.sin(k * phase) * rel, batch, n) for k in (1, 2, 3)]
        return torch.linalg.det(torch.stack(moments, dim=1))[:, None]


def _errors(model: nn.Module, data: Batch, group: Group, elements) -> Tensor:
    """``|f(g·x) - ρ(g) f(x)|`` per stacked graph, computed by hand."""
    fgx = model(group.act(elements, data, SPEC))
    return (fgx - group.act_output(elements, model(data), SPEC)).abs().amax(-1)


def _cosets(group: Group, g) -> Tensor:
    """Coset of each element, read off the element itself (independent of the sampler)."""
    if isinstance(group, (O3, E3)):
        return (torch.det(g[0] if isinstance(g, tuple) else g) < 0).long()
    if isinstance(group, Dihedral):
        return g[:, 1]
    raise AssertionError(group)


@pytest.mark.parametrize("group", [O3(), E3(), Dihedral(4)], ids=repr)
@pytest.mark.parametrize("copies", [1, 2, 3, 6])
def test_copy_c_lies_in_coset_c_mod_num_cosets(group, copies, molecules64):
    stacked = repeat(molecules64, copies)
    g = group.sample_copies(stacked, copies, torch.Generator().manual_seed(copies))
    expected = (torch.arange(copies) % group.num_cosets).repeat_interleave(num_graphs(molecules64))
    assert group.num_cosets == 2 and torch.equal(_cosets(group, g), expected)


@pytest.mark.parametrize("group", [SO3(), SE3(), E3(proper=True)], ids=repr)
def test_proper_groups_have_one_coset_and_sample_rotations_only(group, molecules64):
    g = group.sample_copies(repeat(molecules64, 4), 4, torch.Generator().manual_seed(0))
    R = g[0] if isinstance(g, tuple) else g
    assert group.num_cosets == 1 and torch.allclose(torch.det(R), torch.ones(R.shape[0], dtype=R.dtype), atol=1e-12)


def test_product_splits_cosets_in_mixed_radix(molecules64):
    # D2 x D2: diagonal matrices, so the factors commute; 4 cosets, first factor fastest.
    group = Dihedral(2) * Permutation() * Dihedral(2)
    assert group.num_cosets == 4
    stacked = repeat(molecules64, 8)
    a, _, b = group.sample_copies(stacked, 8, torch.Generator().manual_seed(0))
    copy = torch.arange(8).repeat_interleave(5)
    assert torch.equal(a[:, 1], copy % 2) and torch.equal(b[:, 1], (copy // 2) % 2)
    assert (SignFlip() * O3()).num_cosets == 2 and (Permutation() * Translation()).num_cosets == 1


def test_sample_copies_default_is_sample_like(molecules64):
    stacked = repeat(molecules64, 3)
    for group in (SO3(), Cyclic(4), Translation()):
        g1 = group.sample_copies(stacked, 3, torch.Generator().manual_seed(5))
        g2 = group.sample_like(stacked, torch.Generator().manual_seed(5))
        assert torch.equal(g1, g2)


def test_sample_copies_needs_copies_dividing_the_batch(molecules64):
    with pytest.raises(ValueError, match=r"copies: expected a positive divisor of the 5 graphs in data, got 2"):
        O3().sample_copies(molecules64, 2)


def test_sample_still_draws_both_cosets_at_random():
    det = torch.det(O3().sample(400, torch.Generator().manual_seed(0)))
    assert 150 < int((det < 0).sum()) < 250  # Haar over all of O(3): half improper


@pytest.mark.parametrize("group", [O3(), E3(), Permutation() * O3()], ids=repr)
def test_chiral_model_is_caught_by_every_draw_with_two_copies(group, chiral):
    model = ChiralModel()
    stacked = repeat(chiral, 2)
    scale = model(chiral).abs()
    assert scale.min() > 1e-3  # far above round-off: a flipped sign is a real, visible error
    for seed in range(50):
        g = group.sample_copies(stacked, 2, torch.Generator().manual_seed(seed))
        err = _errors(model, stacked, group, g).reshape(2, -1)
        assert err[0].max() < 1e-10  # proper copy: exact
        assert torch.allclose(err[1], 2 * scale[:, 0], rtol=1e-9)  # improper copy: f flips sign


def test_sample_like_alone_misses_the_chiral_model_by_luck(chiral):
    # Why measuring goes through sample_copies: one random element of O(3) is proper half the time.
    model, one = ChiralModel(), Batch.from_data_list([chiral[0]])
    draws = [O3().sample_like(one, torch.Generator().manual_seed(seed)) for seed in range(40)]
    missed = [float(_errors(model, one, O3(), g).max()) < 1e-10 for g in draws]
    assert 5 < sum(missed) < 35


@pytest.mark.parametrize("group", [SO3(), SE3(), Permutation() * SE3()], ids=repr)
def test_chiral_model_is_exact_for_proper_groups(group, chiral):
    model = ChiralModel()
    stacked = repeat(chiral, 4)
    for seed in range(20):
        g = group.sample_copies(stacked, 4, torch.Generator().manual_seed(seed))
        assert _errors(model, stacked, group, g).max() < 1e-10
    assert_equivariant(model, chiral, group, SPEC)


@pytest.mark.parametrize("n_samples", [None, 1, 2, 5])
def test_assert_equivariant_always_checks_reflections(n_samples, chiral):
    model = ChiralModel()
    for seed in range(25):
        with pytest.raises(AssertionError, match="not equivariant under O3"):
            assert_equivariant(
                model, chiral, O3(), SPEC, n_samples=n_samples, generator=torch.Generator().manual_seed(seed)
            )
    with pytest.raises(AssertionError, match="not equivariant under E3"):
        assert_equivariant(model, Batch.from_data_list([chiral[0]]), E3(), SPEC, n_samples=1)


@pytest.mark.parametrize("group", [O3(), E3()], ids=repr)
def test_equivariance_error_measures_both_cosets_even_with_one_sample(group, chiral):
    from geoadapt.metrics import equivariance_error

    model = ChiralModel()
    for seed in range(20):
        err = equivariance_error(model, chiral, group, SPEC, n_samples=1, generator=torch.Generator().manual_seed(seed))
        assert err.shape[0] == 2 and err[1].min() > 1e-3 > 1e-10 > err[0].max()
