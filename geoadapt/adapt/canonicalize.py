"""Canonicalization (Kaba et al. 2023; Mondal et al. 2023): a small equivariant network maps each input
to a canonical pose, the unconstrained pretrained model sees only canonical inputs, and the output is
mapped back. A prior loss keeps canonical poses near the pretraining distribution (identity pose)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from geoadapt.groups import O3, Cyclic, Translation
from geoadapt.groups.images import rotate_images
from geoadapt.models.egnn import EGNN
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, graph_index, num_graphs


def gram_schmidt(v1: Tensor, v2: Tensor) -> Tensor:
    """Rotations ``(B, 3, 3)``: columns ``e1 = v1/|v1|``, ``e2`` from ``v2``, ``e3 = e1 x e2`` (SO(3) equivariant)."""
    e1 = F.normalize(v1, dim=-1, eps=1e-8)
    e2 = F.normalize(v2 - (e1 * v2).sum(-1, keepdim=True) * e1, dim=-1, eps=1e-8)
    return torch.stack([e1, e2, torch.cross(e1, e2, dim=-1)], dim=-1)


class PoseCanonicalizer(nn.Module):
    """Predicts an SO(3) pose per graph from an EGNN's two equivariant vectors (then Gram-Schmidt)."""

    def __init__(self, in_dim: int, hidden: int = 32, num_layers: int = 2) -> None:
        super().__init__()
        self.net = EGNN(in_dim=in_dim, output="2x1o", hidden=hidden, num_layers=num_layers)

    def forward(self, data: AnyData) -> Tensor:
        v = self.net(data).reshape(-1, 2, 3)
        return gram_schmidt(v[:, 0], v[:, 1])


class Canonicalized3D(nn.Module):
    """``f_c(x) = ρ_out(R(x)) f(R(x)^T (x - c))`` with ``R`` from :class:`PoseCanonicalizer`: SE(3) equivariant."""

    def __init__(self, model: nn.Module, spec: Spec, in_dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.model, self.spec = model, spec
        self.canonicalizer = PoseCanonicalizer(in_dim, hidden)
        self.last_pose: Tensor | None = None

    def forward(self, data: AnyData) -> Tensor:
        n = num_graphs(data)
        position = self.spec.positions[0]
        center = global_mean_pool(data[position], graph_index(data), n)
        R = self.canonicalizer(data)
        self.last_pose = R
        canonical = O3().act(R.transpose(-1, -2), Translation().act(-center, data, self.spec), self.spec)
        out = self.model(canonical)
        return O3().act_output(R, out, self.spec, graph_index(data) if self.spec.output_level == "node" else None)

    def prior_loss(self) -> Tensor:
        """``||R - I||^2`` on the last batch: canonical poses stay near the pretraining frame."""
        eye = torch.eye(3, dtype=self.last_pose.dtype, device=self.last_pose.device)
        return (self.last_pose - eye).pow(2).sum((-1, -2)).mean()


class RotationScorer(nn.Module):
    """Scores every C_n rotation of an image with one shared CNN: ``score_k = s(rot_{-k} x)`` (equivariant)."""

    def __init__(self, n: int, channels: int = 1, hidden: int = 16) -> None:
        super().__init__()
        self.group = Cyclic(n)
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.LazyLinear(1),
        )

    def forward(self, images: Tensor) -> Tensor:
        n, B = self.group.n, images.shape[0]
        angles = self.group.angle(self.group.inverse(torch.arange(n))).repeat_interleave(B)
        rotated = rotate_images(images.repeat(n, 1, 1, 1), angles)
        return self.net(rotated).reshape(n, B).T  # (B, n)


class CanonicalizedImages(nn.Module):
    """``f_c(x) = f(rot_{-k*} x)`` with ``k* = argmax_k score_k(x)``: exactly C_n invariant (up to score ties).

    ``prior_loss`` (cross-entropy towards ``k = 0`` on the training images) teaches the scorer that the
    training images are already in canonical pose, as in Mondal et al. (2023).
    """

    def __init__(self, model: nn.Module, n: int = 4, channels: int = 1) -> None:
        super().__init__()
        self.model = model
        self.scorer = RotationScorer(n, channels)
        self.last_scores: Tensor | None = None

    def forward(self, images: Tensor) -> Tensor:
        scores = self.scorer(images)
        self.last_scores = scores
        k = scores.argmax(-1)
        canonical = rotate_images(images, self.scorer.group.angle(self.scorer.group.inverse(k)))
        return self.model(canonical)

    def prior_loss(self) -> Tensor:
        target = torch.zeros(self.last_scores.shape[0], dtype=torch.long, device=self.last_scores.device)
        return F.cross_entropy(self.last_scores, target)
