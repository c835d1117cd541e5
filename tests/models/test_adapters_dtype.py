"""Adapters are made in the dtype of the layer they wrap: LoRA on float64 models (geoadapt's e3nn GNN and
SevenNet-0) leaves the outputs unchanged at the start and trains."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

from geoadapt.adapt import make_strategy
from geoadapt.adapt.adapters import IrrepsAdapter, LoRALinear, adapter_parameters
from geoadapt.dtypes import default_dtype
from geoadapt.io import atoms_to_data
from geoadapt.models import build
from geoadapt.models.potential import potential

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


def train_step(model: torch.nn.Module, loss_of) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    optimizer.zero_grad()
    loss = loss_of(model)
    loss.backward()
    optimizer.step()


def check_adapters(model: torch.nn.Module, dtype: torch.dtype) -> None:
    adapters = [m for m in model.modules() if isinstance(m, (LoRALinear, IrrepsAdapter))]
    assert adapters and all(p.dtype == dtype for p in adapter_parameters(model))


def test_lora_on_a_float64_e3nn_gnn(molecules64):
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        model = build("e3nn_gnn", in_dim=molecules64.x.shape[1])
    before = model(molecules64)
    adapted = make_strategy("lora", copy.deepcopy(model), rank=2).model  # made under torch's float32 default
    check_adapters(adapted, torch.float64)
    assert torch.equal(adapted(molecules64), before)
    train_step(adapted, lambda m: m(molecules64).pow(2).mean())
    assert not torch.allclose(adapted(molecules64), before)


def test_adapters_follow_a_float32_model_under_a_float64_default(molecules):
    torch.manual_seed(0)
    model = build("e3nn_gnn", in_dim=molecules.x.shape[1])
    with default_dtype(torch.float64):
        adapted = make_strategy("lora", copy.deepcopy(model), rank=2).model
    check_adapters(adapted, torch.float32)
    assert torch.equal(adapted(molecules), model(molecules))


@needs_sevenn
def test_lora_on_float64_sevennet_trains_on_crystal_forces():
    model = build("sevennet_0", dtype=torch.float64)
    atoms = bulk("Cu", "fcc", a=3.65, cubic=True)
    atoms.rattle(0.05, seed=0)
    batch = Batch.from_data_list([atoms_to_data(atoms, torch.float64)])
    with torch.no_grad():
        before = potential(model, batch, stress=True)
    adapted = make_strategy("lora", model, rank=2).model
    check_adapters(adapted, torch.float64)
    with torch.no_grad():
        start = potential(adapted, batch, stress=True)
    assert torch.equal(start.energy, before.energy) and torch.equal(start.forces, before.forces)
    assert torch.equal(start.stress, before.stress)
    train_step(adapted, lambda m: potential(m, batch).forces.pow(2).mean())
    with torch.no_grad():
        after = potential(adapted, batch)
    assert not torch.allclose(after.forces, before.forces, atol=1e-9)
