"""Products: a product is built exactly when its factors commute, and then it is a homomorphism."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch_geometric.data import Batch

from geoadapt import Spec
from geoadapt.groups import (
    E3,
    O3,
    SE3,
    SO2,
    SO3,
    Cyclic,
    Dihedral,
    Group,
    Permutation,
    ProductGroup,
    SignFlip,
    Translation,
    why_not_commuting,
)
from geoadapt.structure import repeat

FACTORS = [
    SO3(),
    O3(),
    E3(),
    SE3(),
    Translation(),
    Permutation(),
    SignFlip(),
    Cyclic(2),
    Cyclic(4),
    Dihedral(2),
    Dihedral(3),
    SO2(),
]
PAIRS = list(itertools.combinations_with_replacement(FACTORS, 2))
ALLOWED = [(g, h) for g, h in PAIRS if why_not_commuting(g, h) is None]
SPEC = Spec(
    fields={"pos": "1o", "force": "1o", "q": "0o", "feat": "2e", "eigvecs": "3x0e"},
    output="0e+1o+2e+1o",
    output_positions=(3,),
)


@pytest.fixture(scope="module")
def data(molecules64: Batch) -> Batch:
    """Real molecules with extra fields of several kinds, stacked 4 times so random elements vary."""
    gen = torch.Generator().manual_seed(0)
    out = molecules64.clone()
    n = out.num_nodes
    for key, dim in (("force", 3), ("q", 1), ("feat", 5), ("eigvecs", 3)):
        out[key] = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return repeat(out, 4)


def _same(a: Batch, b: Batch) -> bool:
    return all(torch.allclose(a[k], b[k], atol=1e-10) for k in ("pos", "force", "q", "feat", "eigvecs", "x"))


def _commute_on(data: Batch, g: Group, h: Group) -> bool:
    """Whether the two actions commute on ``data``, measured: ``g·(h·x) == h·(g·x)`` for random elements."""
    gen = torch.Generator().manual_seed(1)
    a, b = g.sample_like(data, gen), h.sample_like(data, gen)
    return _same(g.act(a, h.act(b, data, SPEC), SPEC), h.act(b, g.act(a, data, SPEC), SPEC))


@pytest.mark.parametrize("g,h", PAIRS, ids=lambda grp: repr(grp))
def test_product_is_built_exactly_when_the_factors_commute(g, h, data):
    commute = _commute_on(data, g, h)
    try:
        ProductGroup(g, h)
        built = True
    except ValueError as err:
        assert "the factors must commute" in str(err)
        built = False
    assert built == commute


@pytest.mark.parametrize("g,h", ALLOWED, ids=lambda grp: repr(grp))
def test_every_allowed_product_is_a_homomorphism_on_molecules(g, h, data):
    group = ProductGroup(g, h)
    gen = torch.Generator().manual_seed(2)
    a, b = group.sample_like(data, gen), group.sample_like(data, gen)
    assert _same(group.act(a, group.act(b, data, SPEC), SPEC), group.act(group.compose(a, b), data, SPEC))
    assert _same(group.act(group.inverse(a), group.act(a, data, SPEC), SPEC), data)
    y = torch.randn(data.num_graphs, SPEC.output.dim, generator=gen, dtype=torch.float64)
    lhs = group.act_output(a, group.act_output(b, y, SPEC), SPEC)
    assert torch.allclose(lhs, group.act_output(group.compose(a, b), y, SPEC), atol=1e-10)
