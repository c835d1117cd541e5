# %% [markdown]
# # (d) Images: the same regularizer on a CNN through the shared group API
# A small CNN learns digits from upright images only. The C4 regularizer (same class as for molecules,
# with the image group `Cyclic(4)`) keeps its predictions consistent under 90° rotations.

# %%
import os

import torch

import geoadapt
from geoadapt.data import load
from geoadapt.groups import Cyclic
from geoadapt.metrics import group_averaged_accuracy
from geoadapt.models import build
from geoadapt.regularizers import EquivarianceRegularizer

QUICK = os.environ.get("GEOADAPT_QUICK") == "1"
digits = load("digits")
train, test = load("digits", split="train"), load("digits", split="test")
loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)

# %%
for weight in (0.0, 1.0):
    torch.manual_seed(0)
    cnn = build("cnn", channels=16)
    regs = [EquivarianceRegularizer(Cyclic(4), cnn.spec, weight=weight, distance="kl")] if weight else []
    trainer = geoadapt.Trainer(
        cnn, "classification", regs, groups=[Cyclic(4)], max_epochs=1 if QUICK else 15, lr=3e-3, progress=False
    )
    trainer.fit(loader)
    c4 = group_averaged_accuracy(cnn, test.images, test.labels, Cyclic(4), cnn.spec)
    upright = trainer.evaluate([(test.images, test.labels)])
    print(
        f"C4 weight {weight}: upright accuracy {upright['accuracy']:.3f}  C4-averaged {c4:.3f}  "
        f"consistency {upright['consistency']:.3f}"
    )
