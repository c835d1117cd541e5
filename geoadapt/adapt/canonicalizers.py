"""Canonicalization (Kaba et al. 2023; Mondal et al. 2023): a small equivariant network maps each input
to a canonical pose, the unconstrained pretrained model sees only canonical inputs, and the output is
mapped back. A prior loss keeps canonical poses near the pretraining distribution (identity pose)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from geoadapt.groups import O3, Cyclic, Dihedral, Group, Translation
from geoadapt.models.egnn import EGNN
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, graph_index, num_graphs


def gram_schmidt(v1: Tensor, v2: Tensor, v3: Tensor | None = None) -> Tensor:
    """Orthogonal matrices ``(B, 3, 3)``: columns ``e1 = v1/|v1|``, ``e2`` from ``v2``, ``e3 = ±e1 x e2``.

    Without ``v3``, ``e3 = e1 x e2`` (a rotation; SO(3) equivariant). With ``v3``, ``e3`` takes the sign
    of ``v3 · (e1 x e2)``: a reflection of the inputs flips that sign, so the frame is O(3) equivariant.
    """
    e1 = F.normalize(v1, dim=-1, eps=1e-8)
    e2 = F.normalize(v2 - (e1 * v2).sum(-1, keepdim=True) * e1, dim=-1, eps=1e-8)
    e3 = torch.cross(e1, e2, dim=-1)
    if v3 is not None:
        e3 = torch.where((v3 * e3).sum(-1, keepdim=True) >= 0, e3, -e3)
    return torch.stack([e1, e2, e3], dim=-1)


class PoseCanonicalizer(nn.Module):
    """Predicts a pose per graph from an EGNN's equivariant vectors (then Gram-Schmidt).

    ``proper=True``: a rotation (two vectors); ``proper=False``: a rotation or reflection (three vectors).
    """

    def __init__(self, in_dim: int, hidden: int = 32, num_layers: int = 2, proper: bool = True) -> None:
        super().__init__()
        self.proper = proper
        vectors = 2 if proper else 3
        self.net = EGNN(in_dim=in_dim, output=f"{vectors}x1o", hidden=hidden, num_layers=num_layers)

    def forward(self, data: AnyData) -> Tensor:
        v = self.net(data).reshape(-1, 2 if self.proper else 3, 3)
        return gram_schmidt(v[:, 0], v[:, 1], None if self.proper else v[:, 2])


class Canonicalized3D(nn.Module):
    """``f_c(x) = ρ_out(R(x)) f(R(x)^T (x - c))`` with ``R`` from :class:`PoseCanonicalizer`.

    SE(3) equivariant (``proper=True``) or E(3) equivariant, reflections included (``proper=False``).
    """

    def __init__(self, model: nn.Module, spec: Spec, in_dim: int, hidden: int = 32, proper: bool = True) -> None:
        super().__init__()
        self.model, self.spec = model, spec
        self.canonicalizer = PoseCanonicalizer(in_dim, hidden, proper=proper)
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


def check_image_group(group: Group) -> Cyclic | Dihedral:
    """``group`` when it is ``Cyclic(n)`` or ``Dihedral(n)`` with ``n`` dividing 4 (exact on pixel grids)."""
    if not isinstance(group, (Cyclic, Dihedral)) or 4 % group.n != 0:
        raise ValueError(
            f"image canonicalization: expected Cyclic(n) or Dihedral(n) with n in (1, 2, 4) (exact on the "
            f"pixel grid), got {group!r}"
        )
    return group


class GroupScorer(nn.Module):
    """Scores every element ``g`` of a finite image group with one shared CNN: ``score_g(x) = s(g^-1 · x)``.

    Then ``score_g(h · x) = score_{h^-1 g}(x)``: the scores permute with the input (equivariant).
    """

    def __init__(self, group: Cyclic | Dihedral, channels: int = 1, hidden: int = 16) -> None:
        super().__init__()
        self.group = check_image_group(group)
        self.spec = Spec(fields={}, positions=())
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.LazyLinear(1),
        )

    def forward(self, images: Tensor) -> Tensor:
        elements = self.group.elements()
        k, B = self.group.size(elements), images.shape[0]
        inverses = self.group.take(self.group.inverse(elements), torch.arange(k).repeat_interleave(B))
        moved = self.group.act(inverses, images.repeat(k, 1, 1, 1), self.spec)
        return self.net(moved).reshape(k, B).T  # (B, |G|)


class CanonicalizedImages(nn.Module):
    """``f_c(x) = ρ_out(g*) f(g*^-1 · x)`` with ``g* = argmax_g score_g(x)``: exactly invariant (equivariant)
    under ``Cyclic(n)`` or ``Dihedral(n)``, ``n`` dividing 4, up to score ties.

    ``group`` may be an int ``n`` for ``Cyclic(n)``. ``prior_loss`` (cross-entropy towards the identity
    on the training images) teaches the scorer that the training images are already in canonical pose,
    as in Mondal et al. (2023).
    """

    def __init__(
        self,
        model: nn.Module,
        group: Cyclic | Dihedral | int = 4,
        channels: int = 1,
        spec: Spec | None = None,
        hidden: int = 16,
    ) -> None:
        super().__init__()
        self.model = model
        self.group = Cyclic(group) if isinstance(group, int) else check_image_group(group)
        self.spec = spec or getattr(model, "spec", None)
        self.scorer = GroupScorer(self.group, channels, hidden)
        self.last_scores: Tensor | None = None

    def forward(self, images: Tensor) -> Tensor:
        scores = self.scorer(images)
        self.last_scores = scores
        best = self.group.take(self.group.elements(), scores.argmax(-1))
        out = self.model(self.group.act(self.group.inverse(best), images, self.scorer.spec))
        return out if self.spec is None else self.group.act_output(best, out, self.spec)

    def prior_loss(self) -> Tensor:
        """Cross-entropy of the scores towards the identity (element 0 of ``group.elements()``)."""
        target = torch.zeros(self.last_scores.shape[0], dtype=torch.long, device=self.last_scores.device)
        return F.cross_entropy(self.last_scores, target)
