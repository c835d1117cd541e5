"""The equivariance regularizer ``R = E_x E_g d(f(g·x), ρ_out(g) f(x))``, at the output and at features.

Training runs ONE forward pass on the original batch stacked with every regularizer's transformed
copies (:func:`stacked_forward`); the task loss uses the original slice, so the only extra work is the
forward (and backward) of the copies. Where dropout or batch norm train, each penalty runs the copied graphs
with their copies in a forward of its own, dropout off and one set of batch statistics for both (:func:`quiet`).
Copies, forward and comparison are those of :mod:`geoadapt.metrics.compare`, the path the metrics take: a
penalty and a measured error differ only in that the penalty keeps its gradients.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from e3nn import o3
from torch import Tensor, nn

from geoadapt.devices import full_precision, upcast
from geoadapt.groups.base import Group
from geoadapt.metrics.compare import (
    DISTANCES,
    Copies,
    compare,
    distance,
    forward_copies,
    make_copies,
    output_rows,
)
from geoadapt.regularizers.schedules import Schedule
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, is_graph, num_graphs

# The self-set weight's gradient ratio per distance (``balance_ratio="auto"``). Chosen once on the targets of
# benchmarks/molecular_adaptation.py (BBBP for classifiers), then fixed for every target: MSE penalties take a
# larger share than Jensen-Shannon ones, which a confident classifier can also lower by saturating its
# probabilities, pulling it towards one class when the share is large.
BALANCE_RATIOS = {"mse": 0.5, "relative": 0.5, "js": 0.2, "kl": 0.2}
WEIGHT_RANGE = (1e-4, 1e6)
# ``every="auto"``: the penalty on every other step (scaled by 2), which keeps the default's extra cost near 1.2x
# a plain epoch at the final error of copying every graph on every step (benchmarks/regularizer_overhead.py).
# Inside a constrained or mixed regularizer "auto" is every step: their multipliers move per step.
LAZY_EVERY = 2
MAX_BACKOFF = 4  # an exact model's weight is re-checked at most 2**4 = 16x less often


class EquivarianceRegularizer(nn.Module):
    """Penalize ``d(f(g·x), ρ_out(g) f(x))`` for ``n_samples`` random ``g`` per sample.

    Args:
        group: the symmetry to keep; spec: how it acts on inputs and outputs.
        weight: multiplier of the penalty (times ``schedule(epoch)``), or ``"auto"`` (the default and the
            recommended start): inside the Trainer the weight sets itself every ``balance_every`` steps so that
            the penalty's gradient is ``balance_ratio`` times the task loss's gradient (norms over the trainable
            parameters, smoothed in log space). ``balance_ratio="auto"`` (the default) is 0.5 for MSE-type
            distances (regression, potentials) and 0.2 for divergences between class probabilities
            (classifiers): see ``BALANCE_RATIOS``. A fixed weight has no scale that suits every target; this one
            follows the task: as the model becomes equivariant the penalty's gradient shrinks and the weight
            grows, so the error keeps falling instead of stalling where a fixed weight stops mattering.
            Outside the Trainer, or inside a mixed or constrained regularizer, ``"auto"`` is 1.
        distance: ``"mse"`` (mean squared difference, in the units the model outputs: standardized targets
            in the Trainer), ``"relative"`` (the squared relative error of the metrics, with the batch's own
            output scale), ``"kl"`` / ``"js"`` (KL / Jensen-Shannon between predictive distributions, for
            classifier logits), or ``"auto"`` (the default): ``"js"`` for classification and ``"mse"`` for
            regression once the Trainer says which (an MSE on raw logits pushes classifiers towards one class).
        layers: feature-level terms: submodule name -> irreps of its output rows (a list of names takes
            the irreps from the submodule's ``irreps_out`` when it has one, else invariant scalars).
        output: include the output-level term (set ``False`` for features only).
        batch_fraction: share of each batch's graphs that get transformed copies (a run of consecutive graphs
            from a random start each step, wrapping at the end: every graph is copied with probability
            ``batch_fraction``). The penalty stays an unbiased estimate of ``E_x E_g d``; the extra compute
            shrinks with it.
            On the steps where ``weight="auto"`` re-sets itself every graph is copied: the weight is calibrated
            on the penalty of the whole batch, whose gradient norm is not inflated by the noise of a small
            sample, so a fraction keeps the expected gradient of copying everything.
        every: apply the penalty on every ``every``-th training step only, multiplied by ``every`` so its
            expected gradient is unchanged (lazy regularization, as for R1 in StyleGAN2). ``"auto"`` (the
            default) is 2: with a quarter of each batch copied, the penalty costs ~1.2x a plain epoch and ends
            about as equivariant as copying every graph on every step (``benchmarks/regularizer_overhead.py``).
            Inside a :class:`ConstrainedEquivarianceRegularizer` or :class:`MixedEquivarianceRegularizer`
            ``"auto"`` is 1: their multipliers move on every step, and with Adam rarer, larger penalty gradients
            are partly normalized away, which a constraint then pays for in missed bounds.
        balance_every: with ``weight="auto"``, how many active steps between two weight updates (doubling, up
            to 16x, while the penalty's gradient is at round-off: an exactly equivariant model).
    """

    def __init__(
        self,
        group: Group,
        spec: Spec,
        weight: float | str = "auto",
        n_samples: int = 1,
        distance: str = "auto",
        layers: Mapping[str, str | o3.Irreps] | Sequence[str] | None = None,
        schedule: Schedule | None = None,
        output: bool = True,
        name: str | None = None,
        batch_fraction: float = 0.25,
        every: int | str = "auto",
        balance_every: int = 20,
        balance_ratio: float | str = "auto",
    ) -> None:
        super().__init__()
        if distance not in (*DISTANCES, "auto"):
            raise ValueError(f"distance: expected one of {(*DISTANCES, 'auto')}, got {distance!r}")
        self.auto_weight = isinstance(weight, str)
        if self.auto_weight and weight != "auto":
            raise ValueError(f"weight: expected a number >= 0 or 'auto', got {weight!r}")
        if not self.auto_weight and not float(weight) >= 0:
            raise ValueError(f"weight: expected a number >= 0 or 'auto', got {weight!r}")
        if balance_ratio != "auto" and (isinstance(balance_ratio, str) or not balance_ratio > 0):
            raise ValueError(f"balance_ratio: expected a number > 0 or 'auto', got {balance_ratio!r}")
        if balance_every < 1:
            raise ValueError(
                f"balance_every: expected an interval >= 1 (steps between weight updates), got {balance_every}"
            )
        if n_samples < 1:
            raise ValueError(f"n_samples: expected >= 1, got {n_samples}")
        if not 0 < batch_fraction <= 1:
            raise ValueError(f"batch_fraction: expected a number in (0, 1], got {batch_fraction}")
        if every != "auto" and (isinstance(every, str) or not every >= 1 or int(every) != every):
            raise ValueError(f"every: expected a whole step interval >= 1 or 'auto', got {every!r}")
        self.group, self.spec, self.n_samples = group, spec, n_samples
        self.register_buffer("weight_value", torch.tensor(1.0 if self.auto_weight else float(weight)))
        self.register_buffer("balance_steps", torch.tensor(0))
        self.register_buffer("round_off_streak", torch.tensor(0))  # balances in a row that found an exact model
        self.balance_every, self.ratio_option = int(balance_every), balance_ratio
        self.distance, self.schedule, self.output = distance, schedule or Schedule(), output
        self.layers = dict(layers) if isinstance(layers, Mapping) else {k: None for k in (layers or [])}
        self.name = name or repr(group)
        self.batch_fraction, self.every_option = float(batch_fraction), every
        self.every = LAZY_EVERY if every == "auto" else int(every)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # Runs saved before the balancing back-off existed have no streak: they resume without one, instead of
        # failing on a missing key.
        state_dict.setdefault(prefix + "round_off_streak", torch.tensor(0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def weight(self) -> float:
        """The weight in force (for ``"auto"``: the latest balanced value)."""
        return float(self.weight_value)

    @weight.setter
    def weight(self, value: float) -> None:
        self.weight_value.fill_(float(value))

    def set_task(self, task: str) -> None:
        """Resolve ``distance="auto"`` for the Trainer's task (``"js"`` for classification, else ``"mse"``)."""
        if self.distance == "auto":
            self.distance = "js" if task == "classification" else "mse"

    @property
    def balance_ratio(self) -> float:
        """The penalty-to-task gradient ratio the auto weight keeps (``"auto"``: by distance, ``BALANCE_RATIOS``)."""
        if self.ratio_option != "auto":
            return float(self.ratio_option)
        return BALANCE_RATIOS.get(self.distance, BALANCE_RATIOS["mse"])  # unresolved "auto" distance: MSE

    def balance(self, task_grad_norm: float, penalty_grad_norm: float) -> None:
        """Set the auto weight from the gradient norms of the task loss and of the (unweighted) penalty."""
        if not (task_grad_norm > 0 and math.isfinite(task_grad_norm)):
            return
        if not penalty_grad_norm > 1e-6 * task_grad_norm:
            # An exact model keeps its weight: its penalty's gradient is round-off (1e-7 in float32), which a
            # weight set from it would amplify to the task's size. It is also balanced less and less often (2x,
            # 4x, ... up to 16x the interval): a balancing step costs about two plain steps, here for nothing.
            self.round_off_streak.fill_(min(int(self.round_off_streak) + 1, MAX_BACKOFF))
            return
        self.round_off_streak.zero_()
        target = math.log(self.balance_ratio * task_grad_norm / penalty_grad_norm)
        if int(self.balance_steps) > 0:  # smoothed, so one noisy batch does not set the weight
            target = 0.7 * math.log(self.weight) + 0.3 * target
        self.weight = math.exp(min(max(target, math.log(WEIGHT_RANGE[0])), math.log(WEIGHT_RANGE[1])))
        self.balance_steps += 1

    def balances_at(self, step: int) -> bool:
        """Whether the auto weight re-sets itself at training step ``step`` (every ``balance_every`` active steps)."""
        active = step // self.every
        if not self.auto_weight or step % self.every or active % self.balance_every:
            return False
        # The back-off read last: a buffer read may wait for the device, on candidate steps only.
        return active % (self.balance_every * 2 ** int(self.round_off_streak)) == 0

    # --- the pieces stacked_forward uses -------------------------------------------------------
    def sample(self, batch: AnyData, generator: torch.Generator | None = None, whole: bool = False) -> Copies:
        """``n_samples`` transformed copies of ``batch`` (or of a random ``batch_fraction`` of its graphs, unless
        ``whole``)."""
        graphs = None
        if self.batch_fraction < 1 and not whole:
            total = num_graphs(batch)
            keep = max(1, round(self.batch_fraction * total))
            # A run of consecutive graphs from a random start (wrapping at the end): every graph is copied with
            # probability batch_fraction, as for a random subset, and the run is a slice of the batch's fields,
            # not a gather. Loaders shuffle, so neighbours in a batch are as random as any subset.
            start = int(torch.randint(total, (1,), generator=generator))
            graphs = (start + torch.arange(keep)) % total
        return make_copies(batch, self.group, self.spec, self.n_samples, generator, graphs=graphs, cover_cosets=False)

    def penalty(
        self, batch: AnyData, fx: Tensor, fgx: Tensor, copies: Copies, features: Mapping[str, tuple[Tensor, Tensor]]
    ) -> Tensor:
        """Mean distance over the copied samples (output term plus feature terms), unweighted."""
        terms = []
        if self.output:
            terms.append(self._term(batch, fx, fgx, copies, self.spec))
        for name, (orig, moved) in features.items():
            terms.append(self._term(batch, orig, moved, copies, self.feature_spec(name, orig, batch)))
        return torch.stack(terms).sum()

    def feature_spec(self, name: str, features: Tensor, batch: AnyData) -> Spec:
        """Spec of a captured feature tensor: its irreps, and node or graph level from its row count."""
        irreps = self.layers.get(name) or f"{features.shape[-1]}x0e"
        node_level = is_graph(batch) and features.shape[0] == batch.num_nodes
        return Spec(output=irreps, output_level="node" if node_level else "graph")

    def _term(self, batch: AnyData, fx: Tensor, fgx: Tensor, copies: Copies, spec: Spec) -> Tensor:
        kind = "mse" if self.distance == "auto" else self.distance
        # Under autocast the outputs may be bfloat16 and the rotations would be too: compare in float32 with
        # autocast off, since differences of 1e-3 vanish in bfloat16.
        with full_precision(fx.device):
            return distance(kind, compare(upcast(fx), upcast(fgx), copies, batch, self.group, spec)).mean()

    # --- the interface the Trainer uses ------------------------------------------------------
    def components(self) -> list[EquivarianceRegularizer]:
        """The base regularizers whose copies join the stacked forward."""
        return [self]

    def loss(self, penalties: list[Tensor], epoch: float) -> Tensor:
        """Contribution to the training loss."""
        return self.weight * self.schedule(epoch) * penalties[0]

    def end_epoch(self, measured: list[float]) -> None:
        """Hook after each epoch with the epoch-mean penalties (dual updates live here in subclasses)."""

    def log(self) -> dict[str, float]:
        """Numbers worth logging every epoch."""
        return {f"{self.name}/weight": self.weight}

    def extra_repr(self) -> str:
        weight = "auto" if self.auto_weight else self.weight
        return f"group={self.group!r}, weight={weight}, n_samples={self.n_samples}, distance={self.distance!r}"


def stacked_forward(
    model: nn.Module,
    batch: AnyData,
    regularizers: Sequence[EquivarianceRegularizer],
    generator: torch.Generator | None = None,
    stack: bool | None = None,
    hook_model: nn.Module | None = None,
    step: int | None = None,
    spec: Spec | None = None,
    whole: Sequence[EquivarianceRegularizer] = (),
) -> tuple[Tensor, list[Tensor]]:
    """``f(x)`` and the unweighted penalty of each base regularizer, from one stacked forward pass.

    ``stack``: copies in the batch's forward (``True``), in their own (``False``), or as the model says (``None``:
    see :func:`geoadapt.metrics.compare.should_stack`). With dropout or batch norm in training mode
    (:func:`stochastic_layers`) the task's output comes from the batch's own forward and each penalty from a
    forward of the copied graphs with their copies, dropout off (see :func:`quiet`). ``hook_model`` is the module
    whose submodule names the feature terms use (the inner model when ``model`` is a DDP wrapper). ``step``
    (training) skips the regularizers whose ``every`` does not divide it: their penalty is 0 on this step, and
    active ones are scaled by ``every``. ``spec`` (default: the first regularizer's) shapes the model's outputs. The
    regularizers in ``whole`` copy every graph this step, whatever their ``batch_fraction``.
    """
    spec = spec or (regularizers[0].spec if regularizers else getattr(hook_model or model, "spec", None))
    active = [r for r in regularizers if step is None or step % r.every == 0]
    if not active:
        out = model(batch)
        return (out if spec is None else output_rows(out, spec)), [out.new_zeros(()) for _ in regularizers]
    copies = [reg.sample(batch, generator, whole=any(reg is w for w in whole)) for reg in active]
    names = sorted({name for reg in active for name in reg.layers})
    modules = dict((hook_model or model).named_modules()) if names else {}
    for reg in active:  # irreps of features not given by the user: from the module (e3nn's irreps_out)
        for name, irreps in reg.layers.items():
            if irreps is None and hasattr(modules.get(name), "irreps_out"):
                reg.layers[name] = str(modules[name].irreps_out)
    found = {}
    noisy = stochastic_layers(hook_model or model)
    if noisy:
        # Dropout draws another mask for every row, and batch norm in training normalizes by the statistics of
        # whatever shares its forward: f(g·x) and f(x) would differ by chance and by their company even for an
        # exactly equivariant model, and the penalty would mostly teach the model to saturate against that
        # noise. So each penalty runs the copied graphs and their copies in one forward of their own, dropout off
        # and batch norm normalizing both by the same statistics (theirs); the task keeps the batch's forward.
        # Batch norm stays in training mode: in eval mode its running statistics are constants the penalty
        # could meet by shifting the activations that the training forward normalizes away anyway.
        fx = output_rows(model(batch), spec)
        with quiet(noisy):
            for reg, c in zip(active, copies):
                base, local = c.originals(batch), c.alone()
                out = forward_copies(model, base, [local], spec, True, sorted(reg.layers), hook_model)
                feats = {n: (out.features[n][0], out.features[n][1]) for n in reg.layers}
                scale = reg.every if step is not None else 1
                found[id(reg)] = scale * reg.penalty(base, out.fx, out.fgx[0], local, feats)
        return fx, [found.get(id(reg), fx.new_zeros(())) for reg in regularizers]
    out = forward_copies(model, batch, copies, spec, stack, names, hook_model)
    for i, (reg, c) in enumerate(zip(active, copies), start=1):
        feats = {n: (out.features[n][0], out.features[n][i]) for n in reg.layers}
        scale = reg.every if step is not None else 1  # lazy regularization keeps the expected gradient
        found[id(reg)] = scale * reg.penalty(batch, out.fx, out.fgx[i - 1], c, feats)
    return out.fx, [found.get(id(reg), out.fx.new_zeros(())) for reg in regularizers]


_STOCHASTIC = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


def stochastic_layers(model: nn.Module) -> list[nn.Module]:
    """Dropout and batch-norm layers of ``model`` in training mode: where a row's output depends on chance or on
    the other rows of its forward pass."""
    if not isinstance(model, nn.Module):
        return []
    return [m for m in model.modules() if isinstance(m, _STOCHASTIC) and m.training]


@contextmanager
def quiet(layers: Sequence[nn.Module]) -> Iterator[None]:
    """Inside the block: dropout of ``layers`` off; their batch norms still normalize by the statistics of the
    forward pass, but leave their running statistics as they were (the copies are not data to learn them from)."""
    dropouts = [m for m in layers if isinstance(m, nn.modules.dropout._DropoutNd)]
    norms = [m for m in layers if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    # The forward updates stand-in copies of the running statistics, which are dropped afterwards; the originals are
    # put back, never overwritten (autograd keeps the stand-ins it saw, at the version it saw).
    saved = [{k: v for k, v in m.named_buffers(recurse=False) if v is not None} for m in norms]
    for m, buffers in zip(norms, saved):
        for k, v in buffers.items():
            setattr(m, k, v.clone())
    for m in dropouts:
        m.training = False
    try:
        yield
    finally:
        for m in dropouts:
            m.training = True
        for m, buffers in zip(norms, saved):
            for k, v in buffers.items():
                setattr(m, k, v)


@torch.no_grad()
def mean_penalty(
    model: nn.Module,
    batches: Iterable[AnyData],
    regularizer: EquivarianceRegularizer,
    spec: Spec | None = None,
    generator: torch.Generator | None = None,
    n_samples: int = 4,
) -> float:
    """``E[R]`` on held-out data: the regularizer's unweighted penalty in eval mode, averaged over ``batches``.

    Every graph is copied ``n_samples`` times (whatever the regularizer's ``batch_fraction`` and
    ``n_samples`` in training), so the estimate is not as noisy as one training step's.
    """
    from geoadapt.metrics.compare import evaluating

    measuring = copy.copy(regularizer)  # the same group, spec, distance and layers; exhaustive copies
    measuring.batch_fraction, measuring.n_samples = 1.0, max(n_samples, regularizer.n_samples)
    total, count = 0.0, 0
    with evaluating(model):
        for batch in batches:
            _, (penalty,) = stacked_forward(model, batch, [measuring], generator, spec=spec)
            total, count = total + float(penalty) * num_graphs(batch), count + num_graphs(batch)
    return total / max(count, 1)
