"""Group axioms on sampled elements: identity, inverse, associativity."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geoadapt import Spec
from geoadapt.groups import E3, O3, SE3, SO2, SO3, Cyclic, Dihedral, Permutation, ProductGroup, SignFlip, Translation

GROUPS = [
    SO3(),
    O3(),
    E3(),
    SE3(),
    Translation(),
    Permutation(7),
    SignFlip(num_vectors=5),
    Cyclic(4),
    Cyclic(6),
    Dihedral(4),
    Dihedral(5),
    SO2(),
    Permutation(7) * SO3(),
    Cyclic(4) * SignFlip(num_vectors=3),
    Permutation(7) * SE3() * SignFlip(num_vectors=2),
]


@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_axioms(group):
    gen = torch.Generator().manual_seed(0)
    a, b, c = (group.sample(6, gen) for _ in range(3))
    e = group.identity(6)
    assert group.equal(group.compose(a, e), a, 1e-12) and group.equal(group.compose(e, a), a, 1e-12)
    assert group.equal(group.compose(a, group.inverse(a)), e, 1e-12)
    assert group.equal(group.compose(group.inverse(a), a), e, 1e-12)
    assert group.equal(group.compose(group.compose(a, b), c), group.compose(a, group.compose(b, c)), 1e-12)
    assert not group.equal(a, b, 1e-3)  # the samples differ, so the checks above could fail


@pytest.mark.parametrize("group", [SO3(), O3(), SE3(), E3()], ids=repr)
def test_rotation_samples_are_orthogonal(group):
    R = group.sample(100, torch.Generator().manual_seed(1))
    R = R[0] if isinstance(R, tuple) else R
    eye = torch.eye(3, dtype=R.dtype)
    assert torch.allclose(R @ R.transpose(-1, -2), eye.expand_as(R), atol=1e-12)
    det = torch.det(R)
    assert torch.allclose(det.abs(), torch.ones_like(det), atol=1e-12)
    if group.num_cosets == 1:
        assert (det > 0).all()
    else:
        assert (det < 0).any() and (det > 0).any()  # both components of O(3) are sampled


def test_so3_haar_mean_is_zero():
    # Haar measure on SO(3): E[R] = 0 (independent check of the sampler)
    R = SO3().sample(20000, torch.Generator().manual_seed(2))
    assert R.mean(0).abs().max() < 0.03


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_dihedral_axioms_any_n(n, seed):
    group = Dihedral(n)
    gen = torch.Generator().manual_seed(seed)
    a, b, c = (group.sample(5, gen) for _ in range(3))
    assert group.equal(group.compose(group.compose(a, b), c), group.compose(a, group.compose(b, c)))
    assert group.equal(group.compose(a, group.inverse(a)), group.identity(5))
    # The 3D matrices form a representation: M(ab) = M(a) M(b).
    assert torch.allclose(group.matrix(group.compose(a, b)), group.matrix(a) @ group.matrix(b), atol=1e-12)


@pytest.mark.parametrize(
    "group,order",
    [(Cyclic(5), 5), (Dihedral(4), 8), (SignFlip(num_vectors=3), 8), (Cyclic(2) * Dihedral(3), 12)],
    ids=repr,
)
def test_finite_elements_are_distinct_and_closed(group, order):
    elems = group.elements()
    assert group.size(elems) == order
    idx = torch.arange(order)
    pairs = group.compose(group.take(elems, idx.repeat_interleave(order)), group.take(elems, idx.repeat(order)))
    # every product is one of the elements: closure
    flat = torch.cat(
        [p.reshape(p.shape[0], -1).double() for p in (pairs if isinstance(pairs, tuple) else (pairs,))],
        1,
    )
    ref = torch.cat(
        [p.reshape(p.shape[0], -1).double() for p in (elems if isinstance(elems, tuple) else (elems,))],
        1,
    )
    assert torch.unique(ref, dim=0).shape[0] == order
    assert (torch.cdist(flat, ref).min(1).values < 1e-9).all()


def test_sizes_are_required_to_sample_without_data():
    with pytest.raises(ValueError, match="num_nodes"):
        Permutation().sample(2)
    with pytest.raises(ValueError, match="num_vectors"):
        SignFlip().sample(2)


@pytest.mark.parametrize(
    "factors,match",
    [
        ((SO3(), Translation()), r"rotations of SO3 do not commute with the translations .*use E3 .* or SE3"),
        ((Translation(), O3()), r"rotations of O3 do not commute with the translations"),
        ((SE3(), O3()), r"rotations of O3 do not commute with the translations of SE3"),
        ((E3(), Translation()), r"rotations of E3.* do not commute with the translations of Translation"),
        ((SO3(), O3()), r"rotations of SO3 and O3 do not commute"),
        ((Cyclic(4), Dihedral(4)), r"rotations of Cyclic\(4\) and Dihedral\(4\) do not commute"),
        ((SO2(), SO3()), r"rotations of SO2 and SO3 do not commute"),
        ((Permutation(), SO3(), Permutation()), r"two node permutations do not commute"),
    ],
)
def test_products_of_non_commuting_factors_are_refused(factors, match):
    with pytest.raises(ValueError, match="the factors must commute, but (the )?" + match):
        ProductGroup(*factors)


def test_product_of_an_undeclared_group_is_refused():
    class Opaque(SO3):
        acts_on = None

        def affine_generators(self):
            return None

    with pytest.raises(ValueError, match=r"does not say what it acts on"):
        Permutation() * Opaque()


def test_so3_times_translation_would_break_the_homomorphism():
    # Why the refusal: the tuple action R·(x + t) does not compose componentwise.
    x = torch.randn(1, 6, 3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    Ra, Rb, ta, tb = (
        SO3().sample(1, gen),
        SO3().sample(1, gen),
        Translation().sample(1, gen),
        Translation().sample(1, gen),
    )
    spec = Spec()
    act = lambda R, t, p: SO3().act(R, Translation().act(t, p, spec), spec)  # noqa: E731
    assert (act(Ra, ta, act(Rb, tb, x)) - act(Ra @ Rb, ta + tb, x)).abs().max() > 0.1
