"""An adapted SevenNet-0 (LoRA, then parity averaging, trained on MD17 forces) saved and loaded back."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from geoadapt.checkpoints import load, save
from geoadapt.models import build
from geoadapt.models.potential import potential
from geoadapt.train import Trainer

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


@needs_sevenn
def test_adapted_sevennet_checkpoint_round_trip(tmp_path):
    from geoadapt.adapt import make_strategy
    from geoadapt.data.potentials import load_md17

    frames = load_md17("ethanol").graphs
    model = build("sevennet_0")
    lora = make_strategy("lora", model).model
    batch = Batch.from_data_list(frames[4:6])
    fresh = potential(lora, batch)  # adapters start at zero: the pretrained forces
    trainer = Trainer(lora, "potential", strategy="parity_average", max_epochs=1, groups=[], lr=1e-3)
    trainer.fit(DataLoader(frames[:2], batch_size=2))
    adapted = trainer.model
    path = save(adapted, tmp_path / "adapted.pt", dataset="md17_ethanol")
    loaded = load(path, arch="sevennet_0")
    assert [s["strategy"] for s in loaded.adaptations] == ["lora", "parity_average"]
    mine, theirs = potential(adapted, batch), potential(loaded, batch)
    assert torch.equal(mine.energy, theirs.energy) and torch.equal(mine.forces, theirs.forces)
    assert not torch.allclose(fresh.forces, mine.forces, atol=1e-6)  # the adaptation (and the refit) came back
    trainable = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert not any(n.endswith(("rescale_atomic_energy.shift", "denominator")) for n in trainable)
