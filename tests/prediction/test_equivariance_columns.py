"""Each prediction's own equivariance error and symmetrized value, checked against routes written by hand: inputs
rotated (or images turned) with plain torch, the model run on them, the comparison and the average done here."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_add_pool

import geoadapt
from geoadapt import Spec
from geoadapt.adapt import make_strategy
from geoadapt.data import load
from geoadapt.groups import SO3, Cyclic, Permutation
from geoadapt.models import Predictor, Standardize, build, wrap
from geoadapt.prediction.run import SEED_STRIDE

SEED, K = 3, 4


def rotated(graphs: list, rotations: torch.Tensor) -> list:
    """Each graph with its positions turned by its own matrix: ``pos @ R^T`` (``R x`` for column vectors)."""
    out = []
    for graph, R in zip(graphs, rotations):
        copy = graph.clone()
        copy.pos = graph.pos @ R.to(graph.pos.dtype).T
        out.append(copy)
    return out


def random_orthogonal(n: int, det: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` random orthogonal matrices of determinant ``det`` (QR of Gaussian matrices, float64)."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    return q * (torch.det(q) * det)[:, None, None]


def test_each_error_is_what_rotating_that_input_by_hand_gives(molecules64):
    torch.manual_seed(0)
    model = build("naive_gnn").double()  # reads raw coordinates: not rotation invariant
    scaled = Predictor(model, Standardize([0.5], [2.0]))  # answers network * 2 + 0.5: target units
    graphs = molecules64.to_data_list()
    predictions = geoadapt.predict(scaled, graphs, with_equivariance=True, group="so3", samples=K, seed=SEED)
    assert predictions.relative_error and predictions.group == "SO3"
    # The elements the run drew (the chunk's generator, seeded by seed and its first row), then everything by hand.
    generator = torch.Generator().manual_seed(SEED * SEED_STRIDE)
    R = SO3().sample_copies(Batch.from_data_list(graphs * K), K, generator).reshape(K, len(graphs), 3, 3)
    with torch.no_grad():
        fx = model(Batch.from_data_list(graphs)) * 2.0 + 0.5  # target units
        fgx = torch.stack([model(Batch.from_data_list(rotated(graphs, R[k]))) * 2.0 + 0.5 for k in range(K)])
    by_hand = ((fgx - fx).abs() / 2.0).mean(0).reshape(-1)  # |f(Rx) - f(x)| over the targets' std, mean over copies
    assert torch.allclose(predictions.error, by_hand, rtol=1e-9, atol=1e-12)
    assert float(by_hand.min()) > 1e-4
    assert torch.allclose(predictions.values, fx, rtol=1e-12)


def test_symmetrized_values_do_not_move_when_the_input_is_rotated_or_mirrored(molecules64):
    torch.manual_seed(0)
    model = build("naive_gnn").double()
    graphs = molecules64.to_data_list()
    generator = torch.Generator().manual_seed(1)
    for group, det in (("so3", 1.0), ("o3", -1.0)):
        moved = rotated(graphs, random_orthogonal(len(graphs), det, generator))
        before = geoadapt.predict(model, graphs, symmetrize=True, group=group)
        after = geoadapt.predict(model, moved, symmetrize=True, group=group)
        assert "frame average" in before.symmetrized_by
        assert torch.allclose(before.symmetrized, after.symmetrized, rtol=0, atol=1e-10), group
        assert float((before.values - after.values).abs().max()) > 1e-4  # the model itself moves


class Handed(nn.Module):
    """``Σ|r_i| + a · (b × c)`` with ``a, b, c = Σ r_i |r_i|^k`` (``r_i`` from the centroid): rotation invariant by
    construction, but the triple product changes sign in a mirror."""

    def forward(self, data):
        n = data.num_graphs
        center = global_add_pool(data.pos, data.batch, n) / global_add_pool(
            torch.ones_like(data.pos[:, :1]), data.batch, n
        )
        rel = data.pos - center[data.batch]
        norm = rel.norm(dim=-1, keepdim=True)
        a, b, c = (global_add_pool(rel * norm**k, data.batch, n) for k in (1, 2, 3))
        handed = (a * torch.linalg.cross(b, c)).sum(-1, keepdim=True)
        return global_add_pool(norm, data.batch, n) + 0.01 * handed


def test_a_rotation_model_symmetrized_over_mirrors_is_its_parity_average(molecules64):
    model = wrap(Handed(), Spec(fields={"pos": "1o"}, output="0e"), symmetry="SE3")
    graphs = molecules64.to_data_list()
    mirrored = geoadapt.predict(model, graphs, symmetrize=True, with_equivariance=True, group="o3")
    rotations = geoadapt.predict(model, graphs, with_equivariance=True, group="so3")
    assert "parity" in mirrored.symmetrized_by
    with torch.no_grad():
        batch = Batch.from_data_list(graphs)
        rel = batch.pos - (global_add_pool(batch.pos, batch.batch) / torch.bincount(batch.batch)[:, None])[batch.batch]
        invariant_part = global_add_pool(rel.norm(dim=-1, keepdim=True), batch.batch)  # what the average leaves
    assert torch.allclose(mirrored.symmetrized, invariant_part, rtol=1e-10)
    assert float(rotations.error.max()) < 1e-9 < 1e-4 < float(mirrored.error.max())  # glycerol is nearly achiral


def test_copies_average_and_consistency_of_an_image_classifier_by_hand():
    digits = load("digits")[list(range(10))]
    torch.manual_seed(0)
    model = build("cnn", channels=8, num_blocks=1).eval()
    predictions = geoadapt.predict(
        model, digits, task="classification", with_equivariance=True, symmetrize=True, group="c4", samples=K, seed=SEED
    )
    generator = torch.Generator().manual_seed(SEED * SEED_STRIDE)
    turns = Cyclic(4).sample_copies(digits.images.repeat(K, 1, 1, 1), K, generator).reshape(K, -1)
    with torch.no_grad():
        fx = model(digits.images)
        turned = [
            torch.stack([torch.rot90(img, int(t), (-2, -1)) for img, t in zip(digits.images, turns[k])])
            for k in range(K)
        ]
        fgx = torch.stack([model(images) for images in turned])
    assert predictions.symmetrized_by.startswith("mean over the transformed copies")
    assert torch.allclose(predictions.symmetrized, fgx.mean(0), atol=1e-5)
    kept = (fgx.argmax(-1) == fx.argmax(-1)).double().mean(0)
    assert torch.equal(predictions.consistency, kept)
    rms = (fgx - fx).pow(2).mean(-1).sqrt().mean(0)  # output units: one block of 10 logits, scale 1
    assert not predictions.relative_error and torch.allclose(predictions.error, rms, atol=1e-5)
    assert torch.equal(predictions.labels, fx.argmax(-1)) and torch.equal(
        predictions.targets[:, 0].long(), digits.labels
    )


def test_the_group_defaults_to_the_one_the_model_was_adapted_for(molecules):
    model = build("naive_gnn")
    group = Permutation() * SO3()
    adapted = make_strategy("augment", model, model.spec, group).model  # records the group in its step
    predictions = geoadapt.predict(adapted, molecules.to_data_list(), with_equivariance=True)
    assert predictions.group == repr(group)
    plain = geoadapt.predict(build("naive_gnn"), molecules.to_data_list(), with_equivariance=True)
    assert plain.group == "SO3"  # nothing recorded: rotations, for 3D inputs
