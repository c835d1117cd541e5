"""geoadapt: adapt pretrained geometric models to new tasks without losing their symmetry."""

from geoadapt.spec import Spec

__version__ = "0.1.0"


def __getattr__(name: str):
    # Trainer and pretrain pull in the whole training stack: import them on first use only.
    if name in ("Trainer", "pretrain"):
        from geoadapt import train

        return getattr(train, name)
    if name == "predict":  # the function (geoadapt.prediction.predict): predictions in target units
        from geoadapt.prediction import predict

        return predict
    raise AttributeError(f"module 'geoadapt' has no attribute {name!r}")


__all__ = ["Spec", "Trainer", "__version__", "predict", "pretrain"]
