# %% [markdown]
# # (f) Adapt a foundation potential and restore its mirror symmetry
# SevenNet-0, an 843k-parameter e3nn interatomic potential trained on MPtrj, ships inside the `sevenn`
# wheel (`pip install 'geoadapt[sevennet]'`). It rotates its forces correctly but was built without
# parity: the forces of a mirror image are not the mirrored forces. Here it is measured, adapted to
# MD17 ethanol with LoRA, and made exactly mirror-symmetric by parity averaging.

# %%
import os

from torch_geometric.loader import DataLoader

from geoadapt.data.potentials import load_md17
from geoadapt.groups import O3, SE3
from geoadapt.models import build
from geoadapt.train import Trainer

quick = os.environ.get("GEOADAPT_QUICK") == "1"
frames = load_md17("ethanol").graphs  # 20 DFT frames: energies (eV) and forces (eV/Å)
train = DataLoader(frames[: 4 if quick else 12], batch_size=4, shuffle=True)
test = DataLoader(frames[12:16] if quick else frames[12:], batch_size=8)

# %% [markdown]
# The potential task fits energies (per atom) and forces (`-dE/dpos`). Before training, the per-element
# energy shift is refitted by least squares to MD17's energy reference (SevenNet's frozen constants stay
# frozen). The equivariance of the forces is measured like any output, under SE(3) and O(3).

# %%
for strategy in ("lora", "parity_average"):
    model = build("sevennet_0")
    trainer = Trainer(model, "potential", strategy=strategy, groups=[SE3(), O3()], max_epochs=1 if quick else 3)
    before = trainer.evaluate(test) if strategy == "lora" else None
    trainer.fit(train)
    after = trainer.evaluate(test)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    if before is not None:
        error = before["equivariance_error/O3"]
        print(f"pretrained: force RMSE {before['force_rmse']:.3f} eV/Å, O(3) force error {error:.1e}")
    print(
        f"{strategy:15s} energy MAE {after['energy_mae']:.2f} meV/atom, force RMSE {after['force_rmse']:.3f} eV/Å, "
        f"SE(3) {after['equivariance_error/SE3(scale=1.0)']:.1e}, O(3) {after['equivariance_error/O3']:.1e}, "
        f"{trainable} trainable"
    )

# %% [markdown]
# LoRA trains 2% of the weights and keeps the rotation symmetry, but the mirror error stays. The parity
# average `(E(x) + E(-x)) / 2` (forces `(F(x) - F(-x)) / 2`) costs two forwards and is mirror-symmetric
# exactly: its O(3) error is only the float32 noise of the rotation. `EquivarianceRegularizer(O3(),
# force_spec(model.spec))` is the soft alternative during fine-tuning; `benchmarks/foundation_adaptation.py`
# compares them all.
