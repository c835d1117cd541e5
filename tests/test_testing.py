"""``assert_equivariant`` passes on equivariant models and fails, informatively, on broken ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geoadapt import Spec
from geoadapt.dtypes import default_dtype
from geoadapt.groups import O3, SO3, Dihedral, Permutation
from geoadapt.models import build
from geoadapt.testing import assert_equivariant
from tests.conftest import FlatImageModel, PooledImageModel


class BrokenVector(nn.Module):
    """An equivariant model whose vector block is pushed off by a fixed direction."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.spec = model, model.spec

    def forward(self, data):
        out = self.model(data)
        return out + torch.tensor([0, 0, 0.5, 0, 0, 0, 0, 0, 0], dtype=out.dtype)


def test_passes_for_e3nn_model(molecules):
    with default_dtype(torch.float64):
        model = build("e3nn_gnn", output="0e+1o+2e")
    assert_equivariant(model, molecules, O3() * Permutation(), model.spec)


def test_fails_naming_the_broken_block_and_element(molecules):
    with default_dtype(torch.float64):
        model = BrokenVector(build("e3nn_gnn", output="0e+1o+2e"))
    with pytest.raises(AssertionError) as info:
        assert_equivariant(model, molecules, SO3(), model.spec)
    message = str(info.value)
    assert "output 1x1o (columns 1:4)" in message and "SO3 element" in message
    assert "1x0e" not in message and "1x2e" not in message  # unbroken blocks are not blamed


def test_finite_groups_are_checked_on_every_element():
    images = torch.randn(3, 1, 6, 6)
    assert_equivariant(PooledImageModel(), images, Dihedral(4), Spec(output="3x0e"))
    with pytest.raises(AssertionError, match="D4 element"):
        assert_equivariant(FlatImageModel(size=6), images, Dihedral(4), Spec(output="3x0e"))
