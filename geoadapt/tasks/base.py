"""The task interface: everything the Trainer asks of a task, with the defaults most tasks keep.

The Trainer never branches on a task's name: it asks the task to split a batch into inputs and targets, to fit
its target scaler, for its loss, its metrics, the view of the model that regularizers and equivariance metrics
see, the default distance of the equivariance penalty, its set-up before training and its checks. A new task
(node classification, dipoles, ...) is a subclass registered with :func:`~geoadapt.tasks.register_task`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from geoadapt.models.predictor import Predictor
from geoadapt.models.scalers import TargetScaler, scaler_from_record, scaler_record
from geoadapt.spec import Spec
from geoadapt.structure import AnyData
from geoadapt.tasks.batches import check_output_rows, split_batch

Pair = tuple[AnyData, Any]  # (inputs, targets) of one batch


class Task:
    """A learning task: targets, scaler, loss, metrics, output view, penalty distance, set-up and checks.

    Class attributes a subclass sets: ``name`` (the registry key), ``default_distance`` (what
    ``EquivarianceRegularizer(distance="auto")`` resolves to), ``headline_metric`` (the validation metric a run is
    judged by and progress lines show), ``higher_is_better`` (metrics early stopping maximizes),
    ``measures_consistency`` (also measure prediction consistency, for classifiers) and ``data_kind`` (where the
    command line reads the task's data: ``"cards"``, dataset cards with targets ``y``; ``"structures"``, labelled
    structures such as ``md17_<molecule>``).

    Lifecycle, as the Trainer calls it: :meth:`bind` (model and Spec known), :meth:`prepare` (the training
    loader, before training: fit the scaler), :meth:`setup` (once, before the first epoch), then per step
    :meth:`split`, :meth:`view`, :meth:`loss`; per evaluation :meth:`predictor`, :meth:`metrics`,
    :meth:`equivariance_scale`; after each epoch :meth:`epoch_checks`; at the end :meth:`final_checks`.
    :meth:`state` / :meth:`load_state` carry what must survive a resume (plain data).
    """

    name: ClassVar[str] = ""
    default_distance: ClassVar[str] = "mse"
    headline_metric: ClassVar[str] = "rmse"
    higher_is_better: ClassVar[frozenset[str]] = frozenset({"equivariance_score", "consistency"})
    measures_consistency: ClassVar[bool] = False
    data_kind: ClassVar[str] = "cards"

    def __init__(self) -> None:
        self.spec: Spec | None = None
        self.scaler: TargetScaler | None = None

    # --- set-up ------------------------------------------------------------------------------------
    def bind(self, model: nn.Module, spec: Spec) -> None:
        """Take the model to train (a network or a :class:`~geoadapt.models.Predictor`) and its Spec."""
        self.spec = spec

    def view_spec(self, spec: Spec) -> Spec:
        """The Spec of :meth:`view`'s output for a model with ``spec``: what regularizers (build them on it) and
        equivariance metrics see. The model's own Spec here."""
        return spec

    @property
    def output_spec(self) -> Spec:
        """:meth:`view_spec` of the bound model's Spec."""
        return self.view_spec(self._bound_spec())

    def prepare(self, loader: Iterable) -> None:
        """Before training, with the whole training loader: fit what depends on the targets (the scaler)."""

    def setup(self, model: nn.Module, loader: Iterable) -> None:
        """Once before the first epoch, after the model's lazy layers exist: task-specific set-up of ``model``."""

    # --- batches, outputs, loss --------------------------------------------------------------------
    def split(self, batch: object) -> Pair:
        """``(inputs, targets)`` of a batch: ``batch.y`` of a graph batch, or an ``(inputs, targets)`` pair."""
        return split_batch(batch)

    def output_columns(self, inputs: AnyData, targets: Any, num_classes: int | None = None) -> int | None:
        """The output columns a new model needs for this data when they differ from one (the command line builds
        models with it); ``None``: the architecture's default."""
        return None

    def check_output(self, out: object, inputs: AnyData, model: nn.Module) -> None:
        """One ``ValueError`` when ``model``'s output on ``inputs`` does not have the rows and columns of its Spec."""
        check_output_rows(out, inputs, self._bound_spec(), model)

    def view(self, model: nn.Module, training: bool = False) -> nn.Module:
        """What regularizers (``training``) and equivariance metrics see of ``model``: the model itself here."""
        return model

    def loss(self, view: nn.Module, out: Tensor, targets: Any, inputs: AnyData) -> Tensor:
        """The task loss of ``out`` (``view``'s output on ``inputs``, ``(rows, dim)``) against ``targets``."""
        raise NotImplementedError(f"task {self.name!r}: expected a loss(view, out, targets, inputs) method")

    # --- evaluation --------------------------------------------------------------------------------
    def predictor(self, model: nn.Module) -> nn.Module:
        """``model`` answering in target units: followed by the scaler's inverse when there is a scaler."""
        return Predictor(model, self.scaler) if self.scaler is not None else model

    def metrics(self, predictor: nn.Module, batches: Sequence[Pair]) -> dict[str, float]:
        """Task metrics of ``predictor`` (target units) on ``(inputs, targets)`` pairs."""
        raise NotImplementedError(f"task {self.name!r}: expected a metrics(predictor, batches) method")

    def equivariance_scale(self) -> Tensor | None:
        """Block scales relative equivariance errors divide by (``None``: the outputs' own spread)."""
        return None

    def scale_description(self) -> str:
        """What relative equivariance errors are relative to, in words (plots say it)."""
        return "the outputs' spread"

    def epoch_checks(self, history: Sequence[Mapping[str, float]]) -> list[str]:
        """Warnings the moment the last epoch of ``history`` (its per-epoch rows) shows a problem (each one line,
        said once: a check that keeps holding returns nothing on later epochs)."""
        return []

    def final_checks(self, history: Sequence[Mapping[str, float]]) -> list[str]:
        """Warnings about a finished run (each one line), from its per-epoch history."""
        return []

    def headline(self, metrics: Mapping[str, float], prefix: str = "val_") -> str:
        """The metric a run is judged by, in words: ``val rmse 0.912``."""
        key = f"{prefix}{self.headline_metric}"
        if key not in metrics:
            return "no validation data"
        return f"{prefix.replace('_', ' ')}{self.headline_metric} {metrics[key]:.4g}"

    # --- state -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a resumed run needs of the task, as plain data: the scaler."""
        return {"scaler": scaler_record(self.scaler)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`."""
        self.scaler = scaler_from_record(state.get("scaler"))

    def _bound_spec(self) -> Spec:
        if self.spec is None:
            raise ValueError(f"task {self.name!r}: expected bind(model, spec) before use, got no Spec")
        return self.spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
