"""Symmetrization: group averaging (finite groups exactly, continuous groups by Monte Carlo) and
frame averaging with PCA frames for E(3) (Puny et al. 2022). One stacked forward pass per batch."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from geoadapt.groups import O3, Group, Translation
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, graph_index, is_graph, num_graphs, repeat


def _mean_over_copies(out: Tensor, copies: int) -> Tensor:
    return out.reshape(copies, -1, *out.shape[1:]).mean(0)


class GroupAveraged(nn.Module):
    """``f_G(x) = mean_g ρ_out(g)^{-1} f(g·x)`` over all elements (finite) or ``n_samples`` random ones.

    Exactly equivariant for finite groups; approximately (Monte Carlo) for continuous ones.
    """

    def __init__(self, model: nn.Module, group: Group, spec: Spec, n_samples: int | None = None) -> None:
        super().__init__()
        if n_samples is None and not group.is_finite:
            raise ValueError(f"n_samples: expected an int for the continuous group {group!r}, got None")
        self.model, self.group, self.spec, self.n_samples = model, group, spec, n_samples

    def forward(self, data: AnyData) -> Tensor:
        n = num_graphs(data)
        if self.n_samples is None:
            elements = self.group.elements()
            copies = self.group.size(elements)
            elements = self.group.take(elements, torch.arange(copies).repeat_interleave(n))
            stacked = repeat(data, copies)
        else:
            copies = self.n_samples
            stacked = repeat(data, copies)
            elements = self.group.sample_like(stacked)
        out = self.model(self.group.act(elements, stacked, self.spec))
        node_graph = graph_index(stacked) if is_graph(stacked) else None
        back = self.group.act_output(self.group.inverse(elements), out, self.spec, node_graph)
        return _mean_over_copies(back, copies)


def pca_frames(pos: Tensor, batch: Tensor, n_graphs: int, proper: bool = False) -> tuple[Tensor, Tensor]:
    """PCA frames per graph: ``(8 or 4, B, 3, 3)`` rotations ``V diag(s)`` (all sign choices) and centroids ``(B, 3)``.

    ``V`` holds the covariance eigenvectors as columns (float64). ``proper=True`` keeps the 4 frames with
    ``det = +1`` (SO(3)). Degenerate spectra (highly symmetric shapes) make frames ill-defined.
    """
    pos64 = pos.to(torch.float64)
    center = global_mean_pool(pos64, batch, n_graphs)
    rel = pos64 - center[batch]
    cov = torch.zeros(n_graphs, 3, 3, dtype=torch.float64, device=pos.device)
    cov.index_add_(0, batch, rel[:, :, None] * rel[:, None, :])
    _, vectors = torch.linalg.eigh(cov)
    signs = torch.tensor([[a, b, c] for a in (1, -1) for b in (1, -1) for c in (1, -1)], dtype=torch.float64)
    frames = vectors[None] * signs[:, None, None, :]  # (8, B, 3, 3): column j scaled by s_j
    if proper:
        keep = torch.det(frames) > 0  # (8, B): exactly 4 per graph
        frames = frames.permute(1, 0, 2, 3)[keep.T].reshape(n_graphs, 4, 3, 3).permute(1, 0, 2, 3)
    return frames, center


class FrameAveraged(nn.Module):
    """``f_F(x) = mean_{R in F(x)} ρ_out(R) f(R^T (x - c))`` with PCA frames: E(3) (or SE(3)) equivariant.

    All frames of all graphs run in one forward pass. ``proper=True`` averages over the 4 rotations only.
    """

    def __init__(self, model: nn.Module, spec: Spec, proper: bool = False) -> None:
        super().__init__()
        self.model, self.spec, self.proper = model, spec, proper

    def forward(self, data: AnyData) -> Tensor:
        if not is_graph(data):
            raise TypeError("FrameAveraged: expected a PyG graph batch with positions")
        n = num_graphs(data)
        position = self.spec.positions[0]
        frames, center = pca_frames(data[position], graph_index(data), n, self.proper)
        copies = frames.shape[0]
        centered = Translation().act(-center, data, self.spec)
        stacked = repeat(centered, copies)
        R = frames.reshape(copies * n, 3, 3)
        out = self.model(O3().act(R.transpose(-1, -2), stacked, self.spec))
        back = O3().act_output(R, out, self.spec, graph_index(stacked) if self.spec.output_level == "node" else None)
        return _mean_over_copies(back, copies)
