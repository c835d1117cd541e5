"""A network and its target scaler as one model whose forward returns target units.

A regression network trains on scaled targets (:class:`~geoadapt.models.scalers.Standardize`), so its own
forward returns scaled numbers. :class:`Predictor` is that network followed by the scaler's inverse:
:func:`geoadapt.checkpoints.load` returns one for a checkpoint that carries a scaler, ``Trainer.predictor()`` returns
one after training, and ``Trainer.evaluate`` and ``geoadapt evaluate`` measure through it, so all three answer
in the units of the targets.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from geoadapt.models.scalers import TargetScaler


class Predictor(nn.Module):
    """``scaler.unscale(network(inputs))``: the network's outputs in target units.

    ``network`` is the trained module (its forward returns scaled values); its scaler is the
    :class:`~geoadapt.models.scalers.TargetScaler` it was trained with, kept on the network as
    ``network.target_scaler`` (``scaler``, when given, is recorded there). One place holds it: a Trainer that refits
    the scaler of a network it trains updates every predictor of that network. Without a scaler the forward is
    the network's. The usual model attributes (``spec``, ``arch``, ``config``, ``adaptations``, ``checkpoint``,
    ``symmetry``) are the network's, so :func:`~geoadapt.checkpoints.save` (network plus scaler), strategies and the
    Trainer (which adapt and train ``network``) take a predictor wherever they take a model.
    """

    def __init__(self, network: nn.Module, scaler: TargetScaler | None = None) -> None:
        super().__init__()
        if isinstance(network, Predictor):
            raise TypeError("network: expected a network, got a Predictor (pass predictor.network)")
        self.network = network
        if scaler is not None:
            network.target_scaler = scaler

    def forward(self, inputs: Any) -> Tensor:
        """Outputs in target units, ``(rows, spec.output.dim)`` as the network's."""
        out = self.network(inputs)
        scaler = self.scaler
        return scaler.unscale(out) if scaler is not None else out

    @property
    def scaler(self) -> TargetScaler | None:
        """The network's target scaler (``network.target_scaler``; ``None``: outputs as the network's)."""
        return getattr(self.network, "target_scaler", None)

    @property
    def target_scaler(self) -> TargetScaler | None:
        """The scaler (also what :func:`~geoadapt.checkpoints.save` stores)."""
        return self.scaler

    @property
    def spec(self) -> Any:
        return self.network.spec

    @property
    def arch(self) -> str:
        return self.network.arch

    @property
    def config(self) -> dict:
        return self.network.config

    @property
    def adaptations(self) -> list:
        return getattr(self.network, "adaptations", [])

    @property
    def checkpoint(self) -> dict:
        return self.network.checkpoint

    @property
    def symmetry(self) -> Any:
        return getattr(self.network, "symmetry", None)

    def extra_repr(self) -> str:
        scaler = self.scaler
        if scaler is None:
            return "forward returns the network's outputs (no target scaler)"
        return f"forward returns target units: {scaler.describe()}"


def network_of(model: nn.Module) -> nn.Module:
    """The network of a :class:`Predictor` (what trains and what strategies adapt); any other model itself."""
    return model.network if isinstance(model, Predictor) else model


def base_model(model: nn.Module) -> nn.Module:
    """The model the first recorded strategy was applied to (``model`` itself when none was): strategies record
    each step in ``model.adaptations`` with the name of the submodule they wrapped (``inner``)."""
    for step in reversed(getattr(model, "adaptations", [])):
        model = model.get_submodule(step["inner"]) if step["inner"] else model
    return model


def scaler_of(model: nn.Module) -> TargetScaler | None:
    """The target scaler ``model`` carries: a :class:`Predictor`'s, or the ``target_scaler`` the Trainer records on
    the network it trains (on the model a strategy wrapped, too); ``None`` when there is none."""
    model = network_of(model)
    found = getattr(model, "target_scaler", None)
    return found if found is not None else getattr(base_model(model), "target_scaler", None)
