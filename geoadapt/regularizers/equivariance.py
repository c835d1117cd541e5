"""The equivariance regularizer ``R = E_x E_g d(f(g·x), ρ_out(g) f(x))``, at the output and at features.

Training runs ONE forward pass on the original batch stacked with every regularizer's transformed
copies (:func:`stacked_forward`); the task loss uses the original slice, so the only extra work is
the forward (and backward) of the copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from e3nn import o3
from torch import Tensor, nn

from geoadapt.groups.base import Element, Group
from geoadapt.regularizers.distances import DISTANCES, per_sample_distance
from geoadapt.regularizers.schedules import Schedule
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, concat, gather_graphs, graph_index, is_graph, num_graphs, repeat


@dataclass
class Sample:
    """Transformed copies of a batch: ``moved = g · repeat(batch, copies)``."""

    moved: AnyData
    elements: Element
    copies: int
    node_graph: Tensor | None
    graphs: Tensor | None = None  # which graphs of the batch were copied (None: all)
    nodes: Tensor | None = None  # ids of the batch's nodes in those graphs (None: all)
    batch_nodes: int = -1  # node count of the original batch (tells node-level rows from graph-level ones)


class EquivarianceRegularizer(nn.Module):
    """Penalize ``d(f(g·x), ρ_out(g) f(x))`` for ``n_samples`` random ``g`` per sample.

    Args:
        group: the symmetry to keep; spec: how it acts on inputs and outputs.
        weight: multiplier of the penalty (times ``schedule(epoch)``).
        distance: ``"mse"``, ``"relative"`` or ``"kl"`` (KL between softmaxes, for invariant logits).
        layers: feature-level terms: submodule name -> irreps of its output rows (a list of names takes
            the irreps from the submodule's ``irreps_out`` when it has one, else invariant scalars).
        output: include the output-level term (set ``False`` for features only).
        batch_fraction: share of each batch's graphs that get transformed copies (chosen at random each
            step). The penalty stays an unbiased estimate of ``E_x E_g d``; the extra compute shrinks with it.
        every: apply the penalty on every ``every``-th training step only, multiplied by ``every`` so its
            expected gradient is unchanged (lazy regularization, as for R1 in StyleGAN2).
    """

    def __init__(
        self,
        group: Group,
        spec: Spec,
        weight: float = 1.0,
        n_samples: int = 1,
        distance: str = "mse",
        layers: Mapping[str, str | o3.Irreps] | Sequence[str] | None = None,
        schedule: Schedule | None = None,
        output: bool = True,
        name: str | None = None,
        batch_fraction: float = 1.0,
        every: int = 1,
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance: expected one of {DISTANCES}, got {distance!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples: expected >= 1, got {n_samples}")
        self.group, self.spec, self.weight, self.n_samples = group, spec, float(weight), n_samples
        self.distance, self.schedule, self.output = distance, schedule or Schedule(), output
        self.layers = dict(layers) if isinstance(layers, Mapping) else {k: None for k in (layers or [])}
        self.name = name or repr(group)
        if not 0 < batch_fraction <= 1:
            raise ValueError(f"batch_fraction: expected a number in (0, 1], got {batch_fraction}")
        self.batch_fraction = float(batch_fraction)
        if every < 1:
            raise ValueError(f"every: expected a step interval >= 1, got {every}")
        self.every = int(every)

    # --- the pieces stacked_forward uses -------------------------------------------------------
    def sample(self, batch: AnyData, generator: torch.Generator | None = None) -> Sample:
        """``n_samples`` transformed copies of ``batch`` (one group element per graph and copy)."""
        graphs = nodes = None
        if self.batch_fraction < 1:
            total = num_graphs(batch)
            keep = max(1, round(self.batch_fraction * total))
            graphs = torch.randperm(total, generator=generator)[:keep].sort().values
        if graphs is None and self.n_samples == 1:
            copies = batch  # actions never write in place, so the batch itself can be moved
        elif is_graph(batch):
            chosen = graphs if graphs is not None else torch.arange(num_graphs(batch))
            # One gather picks the graphs and tiles the copies: graph b of copy c lands at c * len(chosen) + b.
            copies, nodes = gather_graphs(batch, chosen.repeat(self.n_samples))
            nodes = nodes[: nodes.numel() // self.n_samples] if graphs is not None else None
        else:
            copies = repeat(batch if graphs is None else batch[graphs], self.n_samples)
        elements = self.group.sample_like(copies, generator)
        moved = self.group.act(elements, copies, self.spec)
        node_graph = graph_index(copies) if is_graph(copies) else None
        batch_nodes = batch.num_nodes if is_graph(batch) else -1
        return Sample(moved, elements, self.n_samples, node_graph, graphs, nodes, batch_nodes)

    def penalty(
        self, fx: Tensor, fgx: Tensor, sample: Sample, features: dict[str, tuple[Tensor, Tensor]], n_graphs: int
    ) -> Tensor:
        """Mean distance over graphs and copies (output term plus feature terms), unweighted."""
        if sample.graphs is not None:  # only some graphs were copied: compare with their rows of f(x)
            fx = self._rows(fx, sample)
            features = {k: (self._rows(orig, sample), moved) for k, (orig, moved) in features.items()}
            n_graphs = sample.graphs.numel()
        terms = []
        if self.output:
            terms.append(self._term(fx, fgx, sample, self.spec, n_graphs))
        for name, (orig, moved) in features.items():
            terms.append(self._term(orig, moved, sample, self.feature_spec(name, orig, fx, sample), n_graphs))
        return torch.stack(terms).sum()

    @staticmethod
    def _rows(values: Tensor, sample: Sample) -> Tensor:
        if sample.nodes is not None and values.shape[0] == sample.batch_nodes:
            return values[sample.nodes]
        return values[sample.graphs]

    def feature_spec(self, name: str, features: Tensor, fx: Tensor, sample: Sample) -> Spec:
        """Spec of a captured feature tensor: its irreps, and node or graph level from its row count."""
        irreps = self.layers.get(name) or f"{features.shape[-1]}x0e"
        level = (
            "node"
            if sample.node_graph is not None and features.shape[0] * sample.copies == sample.node_graph.shape[0]
            else "graph"
        )
        return Spec(output=irreps, output_level=level)

    def _term(self, fx: Tensor, fgx: Tensor, sample: Sample, spec: Spec, n_graphs: int) -> Tensor:
        reps = fx.repeat(sample.copies, *([1] * (fx.dim() - 1)))
        expected = self.group.act_output(sample.elements, reps, spec, sample.node_graph)
        if spec.output_level == "node" and sample.node_graph is not None:
            rows = sample.node_graph
        else:
            rows = torch.arange(fgx.shape[0], device=fgx.device)
        total = n_graphs * sample.copies
        flat_moved, flat_expected = fgx.reshape(fgx.shape[0], -1), expected.reshape(expected.shape[0], -1)
        return per_sample_distance(self.distance, flat_moved, flat_expected, rows, total).mean()

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
        return f"group={self.group!r}, weight={self.weight}, n_samples={self.n_samples}, distance={self.distance!r}"


class _Capture:
    """Forward hooks that record the outputs of named submodules (in call order)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(
                f"layers: expected submodule names of {type(model).__name__} "
                f"(e.g. {list(modules)[1:6]}), got unknown {missing}"
            )
        self.outputs: dict[str, list[Tensor]] = {n: [] for n in names}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name].append(output[0] if isinstance(output, tuple) else output)

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _row_counts(part: AnyData, level: str) -> int:
    if not is_graph(part):
        return part.shape[0]
    return part.num_nodes if level == "node" else num_graphs(part)


def _split(tensor: Tensor, parts: list[AnyData], total_nodes: int) -> list[Tensor]:
    level = "node" if is_graph(parts[0]) and tensor.shape[0] == total_nodes else "graph"
    return list(tensor.split([_row_counts(p, level) for p in parts], dim=0))


def stacked_forward(
    model: nn.Module,
    batch: AnyData,
    regularizers: Sequence[EquivarianceRegularizer],
    generator: torch.Generator | None = None,
    stack: bool = True,
    hook_model: nn.Module | None = None,
    step: int | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """``f(x)`` and the unweighted penalty of each base regularizer, from one stacked forward pass.

    With ``stack=False`` (models whose forward mixes samples, e.g. batch norm in training mode, when that
    must not see the copies) the copies run in separate forwards instead. ``hook_model`` is the module
    whose submodule names the feature terms use (the inner model when ``model`` is a DDP wrapper).
    """
    if step is not None and any(step % reg.every for reg in regularizers):
        # ``step`` skips regularizers whose ``every`` does not divide it: their penalty is 0 this step.
        active = [reg for reg in regularizers if step % reg.every == 0]
        out, penalties = stacked_forward(model, batch, active, generator, stack, hook_model, step)
        found = iter(penalties)
        return out, [next(found) if step % reg.every == 0 else out.new_zeros(()) for reg in regularizers]
    if not regularizers:
        return model(batch), []
    samples = [reg.sample(batch, generator) for reg in regularizers]
    parts = [batch] + [s.moved for s in samples]
    names = sorted({name for reg in regularizers for name in reg.layers})
    hook_model = hook_model or model
    modules = dict(hook_model.named_modules()) if names else {}
    for reg in regularizers:  # irreps of features not given by the user: from the module (e3nn's irreps_out)
        for name, irreps in reg.layers.items():
            if irreps is None and hasattr(modules.get(name), "irreps_out"):
                reg.layers[name] = str(modules[name].irreps_out)
    capture = _Capture(hook_model, names) if names else None
    try:
        if stack:
            stacked = concat(parts)
            out = model(stacked)
            total_nodes = stacked.num_nodes if is_graph(stacked) else -1
            outs = _split(out, parts, total_nodes)
            feats = {n: _split(capture.outputs[n][0], parts, total_nodes) for n in names} if capture else {}
        else:
            outs = [model(p) for p in parts]
            feats = {n: capture.outputs[n] for n in names} if capture else {}
    finally:
        if capture:
            capture.close()
    n_graphs = num_graphs(batch)
    penalties = []
    for i, (reg, sample) in enumerate(zip(regularizers, samples), start=1):
        reg_feats = {n: (feats[n][0], feats[n][i]) for n in reg.layers}
        scale = reg.every if step is not None else 1  # lazy regularization keeps the expected gradient
        penalties.append(scale * reg.penalty(outs[0], outs[i], sample, reg_feats, n_graphs))
    return outs[0], penalties
