"""Group elements are made on the device of the data they act on, at (at least) its precision.

Without a GPU the ``meta`` device stands in for "another device": an element left on the CPU shows up as
a CPU tensor beside meta data.
"""

from __future__ import annotations

import pytest
import torch

from geoadapt.devices import to_device
from geoadapt.equivariance import all_elements, make_copies
from geoadapt.groups import E3, O3, SE3, SO2, SO3, Cyclic, Dihedral, Permutation, Translation
from geoadapt.groups.signflip import SignFlip
from geoadapt.spec import Spec

GROUPS = [SO3(), O3(), E3(), SE3(), Translation(), Permutation(), Cyclic(4), Dihedral(4), SO2(), SO3() * Permutation()]


def _parts(element):
    return element if isinstance(element, tuple) else (element,)


@pytest.mark.parametrize("group", GROUPS, ids=repr)
@pytest.mark.parametrize("kind", ["point_cloud", "graphs"])
def test_sampled_elements_follow_the_device_and_dtype_of_the_input(group, kind, molecules64):
    data = torch.randn(4, 5, 3, dtype=torch.float64) if kind == "point_cloud" else molecules64
    generator = torch.Generator().manual_seed(0)
    for element in (group.sample_like(data, generator), group.sample_copies(data, 1, generator)):
        for part in _parts(element):
            assert part.device == torch.device("cpu")
            assert part.dtype == torch.float64 or not part.is_floating_point()  # float64 in, float64 out
    moved = to_device(data, torch.device("meta"))
    for element in (group.sample_like(moved, generator), group.sample_copies(moved, 1, generator)):
        assert [p.device.type for p in _parts(element)] == ["meta"] * len(_parts(element))
        assert all(p.dtype == torch.float64 or not p.is_floating_point() for p in _parts(element))


def test_copies_on_another_device_stay_there(molecules64):
    """Enumerated elements, random subsets of samples and the acted copies all live on the data's device."""
    elements, _ = all_elements(Cyclic(4), to_device(molecules64, torch.device("meta")))
    assert elements.device.type == "meta"
    clouds = torch.randn(4, 5, 3, dtype=torch.float64, device="meta")
    copies = make_copies(clouds, SO3(), Spec(), 2, torch.Generator().manual_seed(0), graphs=torch.tensor([0, 2]))
    assert copies.graphs.device.type == "meta" and copies.moved.device.type == "meta"
    assert copies.moved.shape == (4, 5, 3) and copies.elements.device.type == "meta"


def test_sign_flips_take_the_dtype_and_device_of_their_field(molecules64):
    data = molecules64.clone()
    data.eigvecs = torch.randn(data.num_nodes, 3, dtype=torch.float64)
    group = SignFlip("eigvecs")
    generator = torch.Generator().manual_seed(0)
    assert group.sample_like(data, generator).dtype == torch.float64
    assert group.sample_like(to_device(data, torch.device("meta")), generator).device.type == "meta"
