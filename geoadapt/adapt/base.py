"""The :class:`Strategy` base class and the registry of named strategies (``STRATEGIES``).

A strategy is applied once to a model: it sets the head policy, builds its structure (adapters,
wrappers) and chooses which parameters train. Parameters that were already frozen when it was
applied stay frozen, whatever the strategy. Each application is recorded on the adapted model as a
plain-data step (``model.adaptations``), so a checkpoint can rebuild the same structure
(:meth:`Strategy.attach`) before loading the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from geoadapt.adapt.freezing import apply_head_policy, soft_freeze_groups
from geoadapt.adapt.options import StrategyOptions, parse_options
from geoadapt.groups import Group, ProductGroup, group_from_name
from geoadapt.groups.records import group_from_record, group_to_record
from geoadapt.models.predictor import network_of
from geoadapt.spec import Spec

log = logging.getLogger("geoadapt")
STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a :class:`Strategy` subclass available by its ``name``."""
    if not cls.name:
        raise ValueError(f"strategy class {cls.__name__}: expected a non-empty 'name', got {cls.name!r}")
    STRATEGIES[cls.name] = cls
    return cls


class Strategy:
    """What trains and how: the (possibly wrapped) model, optimizer groups, a batch transform, an extra loss.

    Subclasses set ``name`` and ``Options`` (a frozen :class:`StrategyOptions` dataclass) and override
    :meth:`build` (structure), :meth:`select` (which parameters train) and :meth:`describe` (one line).
    Build one with options as keywords or an options instance, then :meth:`apply` it to a model::

        strategy = STRATEGIES["freeze"](patterns=("convs.0.*",))
        model = strategy.apply(model, spec)

    Attributes set by :meth:`apply`: ``model`` (what to train and call), ``spec``, ``group``, ``notes``
    (lines to log), ``kept_frozen`` (names of parameters frozen before the strategy, left frozen),
    ``lr_scales``, ``batch_transform`` (``(batch, generator) -> batch`` or None), ``extra_loss``
    (``() -> Tensor`` or None, read after each forward).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    uses_group: ClassVar[bool] = False  # the group is kept (and recorded) only by strategies that use it
    needs_group: ClassVar[bool] = False
    head_optional: ClassVar[bool] = False  # apply the head policy only when the model has that head

    def __init__(self, options: StrategyOptions | None = None, **values: Any) -> None:
        if options is None:
            options = parse_options(self.Options, values, self.name)
        elif values or not isinstance(options, self.Options):
            raise ValueError(
                f"strategy {self.name!r} options: expected one {self.Options.__name__} or keywords, "
                f"got {type(options).__name__} and {sorted(values)}"
            )
        self.options = options
        self.model: nn.Module | None = None
        self.spec: Spec | None = None
        self.group: Group | None = None
        self.notes: list[str] = []
        self.kept_frozen: list[str] = []
        self.lr_scales: dict[str, float] = {}
        self.batch_transform: Callable | None = None
        self.extra_loss: Callable[[], Tensor] | None = None

    # --- what subclasses override ----------------------------------------------------------------
    def check(self, model: nn.Module) -> None:
        """Raise ``ValueError`` when the options do not fit the model, Spec or group (before any change)."""

    def build(self, model: nn.Module) -> nn.Module:
        """The structure: return the module to train (``model`` itself, changed in place, or a wrapper)."""
        return model

    def select(self, model: nn.Module) -> None:
        """Set ``requires_grad`` on the parameters of the built model (default: all train)."""
        for p in model.parameters():
            if not isinstance(p, nn.parameter.UninitializedParameter):  # lazy layers start trainable
                p.requires_grad_(True)

    def describe(self) -> str:
        """One line saying what the strategy did."""
        return f"{self.name}: {self.options}"

    # --- applying --------------------------------------------------------------------------------
    def apply(self, model: nn.Module, spec: Spec | None = None, group: Group | None = None) -> nn.Module:
        """Adapt ``model``: head policy (logged), structure, trainable parameters. Returns ``self.model``.

        ``spec`` defaults to ``model.spec``; ``group`` is needed by strategies with ``needs_group``. A
        :class:`~geoadapt.models.Predictor` is adapted through its network (what trains).
        """
        model = network_of(model)
        self._bind(model, spec, group)
        frozen = {id(p): p for p in model.parameters() if not p.requires_grad}
        head_notes = []  # apply_head_policy logs its own line
        if not self.head_optional or hasattr(model, self.options.head):
            head_notes.append(apply_head_policy(model, self.options.head_policy, self.options.head))
        adapted = self._build(model)
        self.select(adapted)
        for p in frozen.values():
            p.requires_grad_(False)
        self.kept_frozen = [n for n, p in adapted.named_parameters() if id(p) in frozen]
        notes = [self.describe()]
        if self.kept_frozen:
            notes.append(f"kept frozen: {len(self.kept_frozen)} tensors the model had frozen ({self.kept_frozen[:4]})")
        for note in notes:
            log.info(note)
        self.notes = head_notes + notes
        return adapted

    def attach(
        self, model: nn.Module, spec: Spec | None = None, group: Group | None = None, record: bool = True
    ) -> nn.Module:
        """Only the structure (adapters, wrappers): no head policy, ``requires_grad`` as built.

        Used to rebuild a saved adapted model before loading its weights and, with ``record=False``
        (no step added to ``model.adaptations``), by the Trainer to train a model as it is.
        """
        model = network_of(model)
        self._bind(model, spec, group)
        return self._build(model, record)

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer groups over trainable parameters (soft-freeze scales applied)."""
        self._require_applied()
        return soft_freeze_groups(self.model, lr, self.lr_scales)

    def _bind(self, model: nn.Module, spec: Spec | None, group: Group | None) -> None:
        if self.model is not None:
            raise ValueError(f"strategy {self.name!r}: expected a fresh strategy, got one already applied to a model")
        spec = spec or getattr(model, "spec", None)
        if spec is None:
            raise ValueError(f"strategy {self.name!r}: expected model.spec or a spec argument, got neither")
        if self.needs_group and group is None:
            raise ValueError(
                f"strategy {self.name!r}: expected a group (Trainer groups=[...], CLI groups=[so3]), got None"
            )
        self.spec, self.group = spec, group if self.uses_group else None
        self.check(model)

    def _build(self, model: nn.Module, record: bool = True) -> nn.Module:
        previous = list(getattr(model, "adaptations", []))
        adapted = self.build(model)
        self.model = adapted
        if not record:
            return adapted
        inner = next(name for name, module in adapted.named_modules() if module is model)
        if adapted is not model:
            adapted.spec = self.spec
            if hasattr(model, "arch"):
                adapted.arch = model.arch
        step = {
            "strategy": self.name,
            "options": self.options.to_dict(),
            "group": group_record(self.group),
            "spec": self.spec.to_dict(),
            "inner": inner,
        }
        adapted.adaptations = [*previous, step]
        return adapted

    def _require_applied(self) -> None:
        if self.model is None:
            raise ValueError(f"strategy {self.name!r}: expected it applied to a model (strategy.apply), got none")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


# --- records --------------------------------------------------------------------------------------
def group_record(group: Group | None) -> str | dict[str, Any] | None:
    """A group as plain data: a short name when ``group_from_name`` rebuilds it exactly (by ``repr``), else its
    class name and options (:func:`~geoadapt.groups.records.group_to_record`); never the object itself."""
    if group is None:
        return None
    factors = group.factors if isinstance(group, ProductGroup) else (group,)
    name = "*".join(f.name.lower() for f in factors)
    try:
        if repr(group_from_name(name)) == repr(group):
            return name
    except ValueError:
        pass
    return group_to_record(group)


def attach_steps(model: nn.Module, steps: Sequence[Mapping[str, Any]]) -> nn.Module:
    """Rebuild the structure of recorded ``steps`` (from ``model.adaptations``) on a fresh base model."""
    for step in steps:
        if step["strategy"] not in STRATEGIES:
            raise ValueError(f"strategy: expected one of {tuple(STRATEGIES)}, got {step['strategy']!r}")
        strategy = STRATEGIES[step["strategy"]](**step["options"])
        model = strategy.attach(model, Spec.from_dict(step["spec"]), group_from_record(step["group"]))
    return model
