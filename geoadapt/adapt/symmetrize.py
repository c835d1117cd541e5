"""Symmetrization: group averaging (finite groups exactly, continuous groups by Monte Carlo) and frame
averaging for E(3) / SE(3) (Puny et al. 2022) with PCA frames that stay exact on symmetric shapes.
One stacked forward pass per batch."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import scatter

from geoadapt.groups import E3, Group
from geoadapt.groups.irreps import is_invariant
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, gather_graphs, graph_index, is_graph, num_graphs, repeat

# Every sign choice of the three frame axes: (8, 3).
_SIGNS = torch.tensor(list(itertools.product((1.0, -1.0), repeat=3)), dtype=torch.float64)


def _mean_over_copies(out: Tensor, copies: int) -> Tensor:
    return out.reshape(copies, -1, *out.shape[1:]).mean(0)


class GroupAveraged(nn.Module):
    """``f_G(x) = mean_g ρ_out(g)^{-1} f(g·x)`` over all elements (finite) or ``n_samples`` random ones.

    Exactly equivariant for finite groups; approximately (Monte Carlo) for continuous ones. Random
    elements are drawn with ``sample_copies``, so groups with several cosets (O(3): rotations and
    reflections) give each coset the same share of the samples.
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
            elements = self.group.sample_copies(stacked, copies)
        out = self.model(self.group.act(elements, stacked, self.spec))
        node_graph = graph_index(stacked) if is_graph(stacked) else None
        back = self.group.act_output(self.group.inverse(elements), out, self.spec, node_graph)
        return _mean_over_copies(back, copies)


@dataclass
class Frames:
    """Frames of a batch of graphs: frame ``f`` is the rigid motion ``x -> rotation[f] x + center[graph[f]]``.

    Attributes:
        rotation: ``(F, 3, 3)`` float64 orthogonal matrices (``det = +1`` for proper frames).
        graph: ``(F,)`` graph of each frame, sorted; graphs have different numbers of frames.
        center: ``(B, 3)`` float64 centroids.
        stabilized: ``(B,)`` True for graphs whose points are collinear or coincide, whose frames also
            average over the rotations that leave the points unchanged.
    """

    rotation: Tensor
    graph: Tensor
    center: Tensor
    stabilized: Tensor


def _tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(gap, line)``: relative eigenvalue gap below which axes are degenerate (eigenvectors are then only
    good to ``eps / gap``), and relative distance below which points are on the axis or at the center."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float64).eps
    return eps ** (1 / 3), eps**0.5


def _axis_rotations(m: int, axis: int) -> Tensor:
    """The ``m`` rotations by ``2πk/m`` about coordinate axis ``axis``: ``(m, 3, 3)``."""
    angle = torch.arange(m, dtype=torch.float64) * (2 * math.pi / m)
    c, s = torch.cos(angle), torch.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    R = torch.eye(3, dtype=torch.float64).repeat(m, 1, 1)
    R[:, i, i], R[:, i, j], R[:, j, i], R[:, j, j] = c, -s, s, c
    return R


def _octahedral_rotations() -> Tensor:
    """The 24 rotations of the cube (signed permutation matrices with ``det = +1``): ``(24, 3, 3)``."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in _SIGNS:
            M = torch.zeros(3, 3, dtype=torch.float64)
            M[torch.arange(3), torch.tensor(perm)] = signs
            if torch.det(M) > 0:
                mats.append(M)
    return torch.stack(mats)


def _ties(values: Tensor, tol: float) -> Tensor:
    """Indices of the entries within ``tol`` (relative) of the largest: a set that roundoff does not change."""
    return torch.nonzero(values >= (1 - tol) * values.max()).flatten()


def _in_plane_bases(y: Tensor, vectors: Tensor, pair: tuple[int, int], axis: int, tol: float) -> Tensor:
    """Bases for a 2-fold degenerate spectrum: the distinct eigenvector, and in the degenerate plane the
    direction of each point farthest from the axis (with its perpendicular): ``(k, 3, 3)``."""
    u = vectors[:, axis]
    proj = y - (y @ u)[:, None] * u
    r = proj.norm(dim=1)
    bases = []
    for a in _ties(r, tol):
        e1 = proj[a] / r[a]
        base = torch.empty(3, 3, dtype=torch.float64, device=y.device)
        base[:, axis], base[:, pair[0]], base[:, pair[1]] = u, e1, torch.linalg.cross(u, e1)
        bases.append(base)
    return torch.stack(bases)


def _spherical_bases(y: Tensor, tol: float) -> Tensor:
    """Bases for a 3-fold degenerate spectrum: for each point ``a`` farthest from the center and each point
    ``b`` farthest from the line through ``a``, the frame ``(a, b ⊥ a, a × b)``: ``(k, 3, 3)``."""
    norms = y.norm(dim=1)
    bases = []
    for a in _ties(norms, tol):
        e1 = y[a] / norms[a]
        perp = y - (y @ e1)[:, None] * e1
        pn = perp.norm(dim=1)
        for b in _ties(pn, tol):
            e2 = perp[b] / pn[b]
            bases.append(torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=1))
    return torch.stack(bases)


def _pca(pos: Tensor, batch: Tensor, n_graphs: int) -> tuple[Tensor, ...]:
    """Centroids ``(B, 3)``, centered positions ``(N, 3)``, covariance eigenvalues ``(B, 3)`` (ascending) and
    eigenvectors ``(B, 3, 3)`` (columns), which neighbouring eigenvalues are equal ``(B, 2)``, and which graphs
    have all their points at the centroid ``(B,)``; float64."""
    gap_tol, line_tol = _tolerances(pos.dtype)
    pos64 = pos.to(torch.float64)
    center = global_mean_pool(pos64, batch, n_graphs)
    rel = pos64 - center[batch]
    cov = torch.zeros(n_graphs, 3, 3, dtype=torch.float64, device=pos.device)
    cov.index_add_(0, batch, rel[:, :, None] * rel[:, None, :])
    values, vectors = torch.linalg.eigh(cov)
    close = values.diff(dim=1) <= gap_tol * values[:, 2:]
    spread = scatter(rel.norm(dim=1), batch, 0, dim_size=n_graphs, reduce="max")
    extent = scatter(pos64.norm(dim=1), batch, 0, dim_size=n_graphs, reduce="max")
    return center, rel, values, vectors, close, spread <= line_tol * extent


def equivariant_frames(pos: Tensor, batch: Tensor, n_graphs: int, proper: bool = False, lmax: int = 0) -> Frames:
    """Frames ``F(x)`` with ``F(g·x) = g F(x)`` for every rigid motion ``g``, from the PCA of each graph.

    Distinct covariance eigenvalues give the 8 sign choices of the eigenvectors (4 with ``det = +1`` for
    ``proper``). Where eigenvalues are degenerate (relative gap below ``eps^(1/3)`` of the dtype of ``pos``)
    the eigenvectors are arbitrary inside their eigenspace, so the frames come from the points instead:

    - two equal eigenvalues (benzene, CO2): the distinct eigenvector ``u``, and in the plane orthogonal to it
      the direction of each point farthest from the axis, with its perpendicular. If every point is on the
      axis (linear molecules), the frames also turn by the ``lmax + 1`` rotations ``2πk/(lmax + 1)`` about
      it: those points are unchanged, and averaging output irreps up to ``lmax`` over them equals averaging
      over all rotations about the axis.
    - three equal eigenvalues (methane, SF6): a frame for each point ``a`` farthest from the center and each
      point ``b`` farthest from the line through ``a``. If every point is at the center (one atom), the frames
      also turn by the 24 rotations of the cube, which average outputs up to ``lmax = 3`` exactly; for
      ``lmax >= 4`` no finite set does, and such graphs are refused (``ValueError`` naming the graph and its
      eigenvalues).

    Every candidate set is chosen from invariants (distances), with ties taken within a relative tolerance,
    so a rotated input gives the rotated set. All frame matrices are float64.

    Args:
        pos: ``(N, 3)`` positions. batch: ``(N,)`` graph of each node. n_graphs: ``B``.
        proper: keep only frames with ``det = +1`` (SE(3) instead of E(3)).
        lmax: the largest ``l`` of the outputs that will be averaged.
    """
    center, rel, values, vectors, close, at_center = _pca(pos, batch, n_graphs)
    gap_tol, line_tol = _tolerances(pos.dtype)
    degenerate = close.any(1) | at_center
    signs = _SIGNS.to(pos.device)
    frames = vectors[:, None] * signs[None, :, None, :]  # (B, 8, 3, 3): column j scaled by s_j
    if proper:
        frames = frames[torch.det(frames) > 0].reshape(n_graphs, 4, 3, 3)  # exactly 4 per graph
    stabilized = torch.zeros(n_graphs, dtype=torch.bool, device=pos.device)
    if not bool(degenerate.any()):
        graph = torch.arange(n_graphs, device=pos.device).repeat_interleave(frames.shape[1])
        return Frames(frames.reshape(-1, 3, 3), graph, center, stabilized)
    per_graph = list(frames.unbind(0))
    eye = torch.eye(3, dtype=torch.float64, device=pos.device)
    for b in torch.nonzero(degenerate).flatten().tolist():
        y = rel[batch == b]
        K = eye[None]
        if bool(at_center[b]):
            if lmax >= 4:
                raise ValueError(
                    f"graph {b}: all {y.shape[0]} points coincide (covariance eigenvalues {values[b].tolist()}), "
                    f"so no finite set of frames averages outputs with l = {lmax} >= 4 exactly"
                )
            bases, stabilized[b] = eye[None], True
            K = _octahedral_rotations().to(pos.device) if lmax >= 2 else K
        elif bool(close[b].all()):
            bases = _spherical_bases(y, gap_tol)
        else:
            pair, axis = ((0, 1), 2) if bool(close[b, 0]) else ((1, 2), 0)
            u = vectors[b][:, axis]
            if float((y - (y @ u)[:, None] * u).norm(dim=1).max()) <= line_tol * float(y.norm(dim=1).max()):
                bases, stabilized[b] = vectors[b][None], True
                K = _axis_rotations(lmax + 1, axis).to(pos.device)
            else:
                bases = _in_plane_bases(y, vectors[b], pair, axis, gap_tol)
        sets = bases[:, None, None] @ K[None, :, None] * signs[None, None, :, None, :]
        sets = sets.reshape(-1, 3, 3)
        per_graph[b] = sets[torch.det(sets) > 0] if proper else sets
    counts = torch.tensor([f.shape[0] for f in per_graph], device=pos.device)
    graph = torch.arange(n_graphs, device=pos.device).repeat_interleave(counts)
    return Frames(torch.cat(per_graph), graph, center, stabilized)


def pca_frames(pos: Tensor, batch: Tensor, n_graphs: int, proper: bool = False) -> tuple[Tensor, Tensor]:
    """Plain PCA frames per graph: ``(8 or 4, B, 3, 3)`` rotations ``V diag(s)`` and centroids ``(B, 3)``.

    ``V`` holds the covariance eigenvectors as columns (float64). ``proper=True`` keeps the 4 frames with
    ``det = +1`` (SO(3)). Degenerate spectra leave ``V`` arbitrary, so graphs with one are refused
    (``ValueError`` naming the graph and its eigenvalues): :func:`equivariant_frames` handles them.
    """
    center, _, values, vectors, close, at_center = _pca(pos, batch, n_graphs)
    degenerate = close.any(1) | at_center
    if bool(degenerate.any()):
        b = int(torch.nonzero(degenerate)[0])
        raise ValueError(
            f"graph {b}: covariance eigenvalues {values[b].tolist()} are degenerate, which leaves its PCA frame "
            "undefined; use equivariant_frames (FrameAveraged does)"
        )
    frames = vectors[None] * _SIGNS.to(pos.device)[:, None, None, :]  # (8, B, 3, 3): column j scaled by s_j
    if proper:
        keep = torch.det(frames) > 0  # (8, B): exactly 4 per graph
        frames = frames.permute(1, 0, 2, 3)[keep.T].reshape(n_graphs, 4, 3, 3).permute(1, 0, 2, 3)
    return frames, center


class FrameAveraged(nn.Module):
    """``f_F(x) = mean_{(R, c) in F(x)} ρ_out(R, c) f(R^T (x - c))``: exactly E(3) (or SE(3)) equivariant.

    Frames come from :func:`equivariant_frames` (PCA, with point-based frames where the spectrum is
    degenerate), so symmetric molecules are exact too; all frames of all graphs run in one forward pass.
    ``proper=True`` keeps rotations only (SE(3)). Predicted positions (``spec.output_positions``) get the
    centroid back. Graphs whose points are collinear or coincide are averaged over the rotations that fix
    those points; that is exact only when no other input field rotates, so such graphs are refused
    (``ValueError``) when the Spec gives another field non-scalar irreps.
    """

    def __init__(self, model: nn.Module, spec: Spec, proper: bool = False) -> None:
        super().__init__()
        self.model, self.spec, self.proper = model, spec, proper

    def forward(self, data: AnyData) -> Tensor:
        if not is_graph(data):
            raise TypeError("FrameAveraged: expected a PyG graph batch with positions")
        n = num_graphs(data)
        lmax = max(ir.l for _, ir in self.spec.output)
        frames = equivariant_frames(data[self.spec.positions[0]], graph_index(data), n, self.proper, lmax)
        self._check_stabilized(frames)
        copies, nodes = gather_graphs(data, frames.graph)
        group = E3()
        g = (frames.rotation, frames.center[frames.graph])
        out = self.model(group.act(group.inverse(g), copies, self.spec))
        node_level = self.spec.output_level == "node"
        back = group.act_output(g, out, self.spec, graph_index(copies) if node_level else None)
        index = nodes if node_level else frames.graph
        return scatter(back, index.to(back.device), 0, dim_size=data.num_nodes if node_level else n, reduce="mean")

    def _check_stabilized(self, frames: Frames) -> None:
        if not bool(frames.stabilized.any()):
            return
        rotating = [
            key
            for key, irreps in self.spec.fields.items()
            if key not in self.spec.positions and not is_invariant(irreps)
        ]
        if rotating:
            b = int(torch.nonzero(frames.stabilized)[0])
            raise ValueError(
                f"graph {b}: its points are collinear or coincide, so frames average over the rotations that "
                f"leave them unchanged, which is exact only if no other input rotates; the Spec gives "
                f"{rotating} non-scalar irreps"
            )
