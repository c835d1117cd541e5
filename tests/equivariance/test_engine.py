"""The engine's forward planner and runner: which forwards run what, and features captured without side effects."""

from __future__ import annotations

import pytest
import torch

from geoadapt.dtypes import default_dtype
from geoadapt.equivariance import BATCH, Pass, Piece, forward_plan, make_copies, plan_forwards, run_copies
from geoadapt.groups import SO3
from geoadapt.metrics import feature_errors
from geoadapt.models import build
from geoadapt.regularizers import EquivarianceRegularizer, stacked_forward


def test_training_plans_stack_split_or_quiet(molecules):
    model = build("naive_gnn").train()
    stacked = plan_forwards(model, molecules, [2, 1])
    assert stacked.passes == [Pass((BATCH, Piece(0, 0, 2), Piece(1, 0, 1)))] and not stacked.noisy
    separate = plan_forwards(model, molecules, [2, 1], stack=False)
    assert separate.passes == [
        Pass((BATCH,)),
        Pass((Piece(0, 0, 1),)),
        Pass((Piece(0, 1, 1),)),
        Pass((Piece(1, 0, 1),)),
    ]
    # The task's outputs given: the copies run without the batch.
    assert plan_forwards(model, molecules, [2], with_batch=False).passes == [Pass((Piece(0, 0, 2),))]
    noisy = build("gin", dropout=0.5).train()  # dropout and batch norm in training mode
    quiet = plan_forwards(noisy, molecules, [2, 1])
    assert quiet.passes == [
        Pass((BATCH,)),
        Pass((Piece(0, originals=True), Piece(0, 0, 2)), quiet=True),
        Pass((Piece(1, originals=True), Piece(1, 0, 1)), quiet=True),
    ]
    kinds = (torch.nn.Dropout, torch.nn.BatchNorm1d)
    assert quiet.noisy == [m for m in noisy.modules() if isinstance(m, kinds)] and len(quiet.noisy) > 1


def test_measuring_plans_follow_the_node_budget(molecules):
    model = build("naive_gnn").eval()
    model.stack_nodes = 2 * molecules.num_nodes + 1  # the batch and one copy per forward, or two copies alone
    plan = plan_forwards(model, molecules, [5], measuring=True)
    counts = forward_plan(model, molecules, 5)
    assert [sum(p.count for p in step.pieces) for step in plan.passes] == [c for c in counts if c]
    assert (BATCH in plan.passes[0].pieces) == (counts[0] != 0)
    with pytest.raises(ValueError, match="expected one set of copies to measure, got 2"):
        plan_forwards(model, molecules, [1, 1], measuring=True)


def test_runs_give_the_outputs_of_the_batch_and_each_copy_by_hand(molecules64):
    model = build("naive_gnn").double().eval()
    copies = make_copies(molecules64, SO3(), model.spec, 3, torch.Generator().manual_seed(0))
    for stack in (True, False):
        out = run_copies(model, molecules64, [copies], model.spec, stack=stack)
        assert torch.allclose(out.fx, model(molecules64), atol=1e-12)
        assert torch.allclose(out.sets[0].fgx, model(copies.moved), atol=1e-12)
    given = run_copies(model, molecules64, [copies], model.spec, outputs=model(molecules64)[:, 0])
    assert given.fx.shape == (5, 1) and torch.allclose(given.sets[0].fgx, model(copies.moved), atol=1e-12)


def test_feature_irreps_are_resolved_without_writing_to_the_regularizer(molecules64):
    """``layers=[name]`` takes the submodule's ``irreps_out`` for the comparison and leaves ``reg.layers`` as given:
    an exact e3nn network pays nothing at a layer with vectors, where treating them as scalars would charge it."""
    with default_dtype(torch.float64):
        model = build("e3nn_gnn", output="0e+1o")
    irreps = str(model.get_submodule("layers.0").irreps_out)
    assert "1o" in irreps or "1e" in irreps
    named = EquivarianceRegularizer(SO3(), model.spec, layers=["layers.0"], output=False, batch_fraction=1.0)
    as_scalars = EquivarianceRegularizer(SO3(), model.spec, layers={"layers.0": None}, output=False)
    _, (penalty,) = stacked_forward(model, molecules64, [named], torch.Generator().manual_seed(0))
    assert float(penalty) < 1e-20 and named.layers == {"layers.0": None}
    width = model.get_submodule("layers.0").irreps_out.dim
    as_scalars.layers = {"layers.0": f"{width}x0e"}  # the same features compared as invariant scalars
    _, (scalars,) = stacked_forward(model, molecules64, [as_scalars], torch.Generator().manual_seed(0))
    assert float(scalars) > 1e-6


def test_features_of_forwards_spread_under_the_budget_match_one_forward(molecules64):
    model = build("naive_gnn").double()

    def errors() -> dict[str, float]:
        return feature_errors(model, molecules64, SO3(), model.spec, ["convs.0"], 3, torch.Generator().manual_seed(0))

    whole = errors()
    model.stack_nodes = molecules64.num_nodes  # every copy in a forward of its own
    spread = errors()
    assert spread["convs.0"] == pytest.approx(whole["convs.0"], rel=1e-9) and whole["convs.0"] > 1e-3
