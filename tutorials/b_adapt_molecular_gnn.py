# %% [markdown]
# # (b) Adapt a molecular GNN with the equivariance regularizer
# Pretrain a coordinate-naive GNN on NCI TPSA with rotation augmentation, then adapt it to the ChEMBL
# activity set with plain fine-tuning and with the constrained regularizer. Watch the rotation error.

# %%
import os

import torch
from torch_geometric.loader import DataLoader

import geoadapt
from geoadapt.checkpoints import load as load_model
from geoadapt.data import load
from geoadapt.groups import SO3
from geoadapt.regularizers import ConstrainedEquivarianceRegularizer, EquivarianceRegularizer

QUICK = os.environ.get("GEOADAPT_QUICK") == "1"
limit, epochs = (120, 2) if QUICK else (600, 12)
geoadapt.pretrain(
    "naive_gnn",
    "rdkit_nci5k",
    "/tmp/geoadapt_tutorial_b.pt",
    epochs=epochs,
    limit=limit,
    augment="so3",
    lr=3e-3,
    progress=False,
)
train = load("rdkit_chembl2321810", split="train", limit=limit, progress=False)
val = load("rdkit_chembl2321810", split="val", limit=limit, progress=False)
loaders = DataLoader(train.graphs, batch_size=32, shuffle=True), DataLoader(val.graphs, batch_size=256)

# %%
for method in ("fine-tune", "constrained"):
    torch.manual_seed(0)
    model = load_model("/tmp/geoadapt_tutorial_b.pt")  # answers in TPSA units; the Trainer refits the scale
    regs = []
    if method == "constrained":
        regs = [ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), model.spec), epsilon=1e-3)]
    trainer = geoadapt.Trainer(model, "regression", regs, groups=[SO3()], max_epochs=epochs, lr=1e-3, progress=False)
    trainer.fit(*loaders)
    metrics = trainer.evaluate(loaders[1])
    print(f"{method:12s} rmse {metrics['rmse']:.3f}  SO(3) error {metrics['equivariance_error']:.3e}")
    for report in trainer.constraints:  # did E[R] <= ε hold on the validation data?
        print(f"{'':12s} {report['constraint']}: measured {report['measured']:.2e}, met: {report['met']}")
