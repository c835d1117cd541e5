"""geoadapt: adapt pretrained geometric models to new tasks without losing their symmetry."""

from geoadapt._version import __version__
from geoadapt.spec import Spec


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
