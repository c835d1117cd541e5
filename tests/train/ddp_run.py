"""Helper for the DDP test: train on 64 molecules, with 1 process (batch 16) or 2 under torchrun (8 each)."""

from __future__ import annotations

import json
import sys

import torch
from torch_geometric.loader import DataLoader

from geoadapt.data import load
from geoadapt.models import build
from geoadapt.train import Trainer
from geoadapt.train.distributed import world_size

if __name__ == "__main__":
    data = load("rdkit_chembl2321810", limit=64, progress=False)
    torch.manual_seed(0)
    model = build("naive_gnn")  # no batch norm: per-rank statistics would differ from one process
    loader = DataLoader(data.graphs, batch_size=16 // world_size(), shuffle=False)
    trainer = Trainer(model, "regression", max_epochs=3, lr=1e-3, seed=0, progress=False, grad_clip=None)
    history = trainer.fit(loader)
    metrics = trainer.evaluate(DataLoader(data.graphs, batch_size=64))
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        json.dump({"train_loss": [r["train_loss"] for r in history], "metrics": metrics}, open(sys.argv[1], "w"))
