"""geoadapt: adapt pretrained geometric models to new tasks without losing their symmetry."""

import torch as _torch

# e3nn 0.4.x (the release mace-torch pins) reads its own constants with a bare torch.load, which torch >= 2.6 limits to
# weights only, and that file holds `slice` objects: allow exactly that type, only while e3nn is first imported.
if hasattr(_torch.serialization, "safe_globals"):
    with _torch.serialization.safe_globals([slice]):
        import e3nn.o3  # noqa: F401

from geoadapt._version import __version__  # noqa: E402
from geoadapt.spec import Spec  # noqa: E402


def __getattr__(name: str):
    # Trainer and pretrain pull in the whole training stack, save and load the strategies: import them on first use.
    if name in ("Trainer", "pretrain"):
        from geoadapt import train

        return getattr(train, name)
    if name in ("save", "load"):
        from geoadapt import checkpoints

        return getattr(checkpoints, name)
    if name == "predict":  # the function (geoadapt.prediction.predict): predictions in target units
        from geoadapt.prediction import predict

        return predict
    raise AttributeError(f"module 'geoadapt' has no attribute {name!r}")


__all__ = ["Spec", "Trainer", "__version__", "load", "predict", "pretrain", "save"]
