"""PyTorch Lightning: the per-epoch hook of geoadapt's regularizers as a ``Callback``.

The LightningModule adds the penalty in its own ``training_step`` (``loss = task + self.reg(self.model, batch)``);
this callback closes each training epoch for the regularizers it is given (:meth:`~geoadapt.regularizers.base.
RegularizerModule.end_epoch`: mixed weights, per-epoch dual steps, homotopy) and logs their numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    import lightning.pytorch as pl
except ImportError as error:  # lightning is an optional dependency, never imported by geoadapt's core
    raise ImportError(
        "geoadapt.integrations.lightning: expected PyTorch Lightning to be installed (pip install lightning), "
        f"got {error}"
    ) from error

from geoadapt.regularizers.base import RegularizerModule


class RegularizerCallback(pl.Callback):
    """After every training epoch: ``reg.end_epoch()`` for each regularizer, then ``reg.log()`` logged through the
    LightningModule (``log_dict``, per epoch)."""

    def __init__(self, *regularizers: RegularizerModule) -> None:
        super().__init__()
        for i, reg in enumerate(regularizers):
            if not isinstance(reg, RegularizerModule):
                raise TypeError(f"regularizers[{i}]: expected a geoadapt regularizer, got {type(reg).__name__}")
        self.regularizers: Sequence[RegularizerModule] = regularizers

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for reg in self.regularizers:
            reg.end_epoch()
            numbers = {k: float(v) for k, v in reg.log().items()}
            if numbers:
                pl_module.log_dict(numbers, on_step=False, on_epoch=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(reg.name for reg in self.regularizers)})"
