"""Regularizers: zero on equivariant models, positive on broken ones, and they do their job in training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch

from geoadapt import Spec
from geoadapt.dtypes import default_dtype
from geoadapt.groups import SO2, SO3, Permutation, SignFlip
from geoadapt.models import build
from geoadapt.regularizers import (
    ConstrainedEquivarianceRegularizer,
    EquivarianceRegularizer,
    MixedEquivarianceRegularizer,
    Schedule,
    stacked_forward,
)
from geoadapt.structure import concat, to_dtype
from geoadapt.tasks import Classification, Regression
from geoadapt.train import Trainer
from geoadapt.train.setup import components_of


def test_penalty_zero_for_equivariant_models(molecules):
    data = to_dtype(molecules, torch.float64)
    with default_dtype(torch.float64):
        e3nn = build("e3nn_gnn", output="0e+1o")
    for distance in ("mse", "relative"):
        regs = [
            EquivarianceRegularizer(SO3(), e3nn.spec, distance=distance, n_samples=3, layers=["layers.0"]),
            EquivarianceRegularizer(Permutation(), e3nn.spec, distance=distance),
        ]
        _, penalties = stacked_forward(e3nn, data, regs)
        assert max(float(p) for p in penalties) < 1e-20  # squared errors of an exact float64 model


def test_mse_penalty_equals_the_mean_squared_difference_by_hand(molecules):
    data = to_dtype(molecules, torch.float64)
    model = build("naive_gnn").double().eval()
    reg = EquivarianceRegularizer(SO3(), model.spec, n_samples=2, batch_fraction=1.0)
    _, (penalty,) = stacked_forward(model, data, [reg], torch.Generator().manual_seed(3))
    copies = reg.sample(data, torch.Generator().manual_seed(3))  # the same rotations
    R = copies.elements
    expected = []
    for k in range(2):
        for b, graph in enumerate(data.to_data_list()):
            one = Batch.from_data_list([graph])
            moved = one.clone()
            moved.pos = one.pos @ R[k * data.num_graphs + b].T
            expected.append(float((model(moved) - model(one)).pow(2).mean()))
    assert float(penalty) == pytest.approx(sum(expected) / len(expected), rel=1e-10)
    # The feature-level term alone sees the broken symmetry too: mean squared difference of node features.
    feature = EquivarianceRegularizer(SO3(), model.spec, layers={"convs.1": "64x0e"}, output=False)
    _, (feature_penalty,) = stacked_forward(model, data, [feature], torch.Generator().manual_seed(3))
    assert float(feature_penalty) > 1e-6


def test_kl_penalty_equals_the_divergence_by_hand(molecules):
    data = to_dtype(molecules, torch.float64)
    data.eigvecs = torch.randn(data.num_nodes, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    model = build("gin", out_dim=3, pe="eigvecs", pe_dim=4).double().eval()
    reg = EquivarianceRegularizer(SignFlip(), model.spec, distance="kl", batch_fraction=1.0)
    out, (penalty,) = stacked_forward(model, data, [reg], torch.Generator().manual_seed(1))
    flipped = reg.sample(data, torch.Generator().manual_seed(1)).moved
    p, q = torch.softmax(model(data), -1), torch.softmax(model(flipped), -1)
    by_hand = (p * (p / q).log()).sum(-1).mean()
    assert out.shape == (5, 3) and float(penalty) == pytest.approx(float(by_hand), rel=1e-10)
    assert float(penalty) > 1e-8
    # One logit: the Bernoulli divergence.
    binary = build("gin", out_dim=1, pe="eigvecs", pe_dim=4).double().eval()
    one_logit = EquivarianceRegularizer(SignFlip(), binary.spec, distance="kl", batch_fraction=1.0)
    _, (bernoulli,) = stacked_forward(binary, data, [one_logit], torch.Generator().manual_seed(1))
    a, b = torch.sigmoid(binary(data)), torch.sigmoid(binary(flipped))
    by_hand = (a * (a / b).log() + (1 - a) * ((1 - a) / (1 - b)).log()).mean()
    assert float(bernoulli) == pytest.approx(float(by_hand), rel=1e-10)


def test_batch_fraction_penalizes_exactly_the_chosen_graphs(molecules):
    data = to_dtype(molecules, torch.float64)
    model = build("naive_gnn").double().eval()
    part = EquivarianceRegularizer(SO3(), model.spec, batch_fraction=0.4)
    _, (penalty,) = stacked_forward(model, data, [part], torch.Generator().manual_seed(5))
    copies = part.sample(data, torch.Generator().manual_seed(5))
    assert copies.graphs.numel() == 2 and copies.moved.num_graphs == 2
    chosen = Batch.from_data_list([data.get_example(int(i)) for i in copies.graphs])
    moved = chosen.clone()
    moved.pos = torch.cat([g.pos @ R.T for g, R in zip(chosen.to_data_list(), copies.elements)])
    assert float(penalty) == pytest.approx(float((model(moved) - model(chosen)).pow(2).mean()), rel=1e-10)


def test_stacked_and_separate_forwards_give_the_same_penalty(molecules):
    data = to_dtype(molecules, torch.float64)
    model = build("naive_gnn").double().eval()
    # Several copies of a part of the batch each: the separate route cuts them out one by one (edges renumbered).
    regs = [
        EquivarianceRegularizer(SO3(), model.spec, n_samples=2),
        EquivarianceRegularizer(Permutation(), model.spec, n_samples=3, batch_fraction=0.6),
    ]
    out_s, stacked = stacked_forward(model, data, regs, torch.Generator().manual_seed(2), stack=True)
    out_p, separate = stacked_forward(model, data, regs, torch.Generator().manual_seed(2), stack=False)
    assert torch.allclose(out_s, out_p, atol=1e-12)
    for a, b in zip(stacked, separate):
        assert float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-20)


def test_batch_norm_in_training_does_not_see_the_copies(molecules):
    model = build("gin")  # batch norm, in training mode
    model.train()
    torch.manual_seed(0)
    # Copies of a part of the batch would shift the batch statistics if they shared its forward pass.
    reg = EquivarianceRegularizer(SO3(), model.spec, n_samples=3, batch_fraction=0.4)
    out, _ = stacked_forward(model, molecules, [reg], torch.Generator().manual_seed(0))
    assert torch.allclose(out, model(molecules), atol=1e-6)  # batch statistics of the batch alone


def test_dropout_and_batch_statistics_stay_out_of_the_penalty(molecules64):
    """With dropout and batch norm in training mode, each penalty runs the copied graphs with their copies in one
    forward, dropout off and one set of batch statistics for both: an exactly invariant model pays nothing, the
    running statistics see the batch alone, and a model that is not invariant pays exactly that distance."""
    torch.manual_seed(0)
    model = build("gin", dropout=0.5).double().train()
    twin = build("gin", dropout=0.5).double().train()
    twin.load_state_dict(model.state_dict())
    reg = EquivarianceRegularizer(Permutation(), model.spec, batch_fraction=0.6)
    torch.manual_seed(1)  # the same dropout masks for the batch's forward here and in the twin's
    out, (penalty,) = stacked_forward(model, molecules64, [reg], torch.Generator().manual_seed(0))
    assert out.shape == (5, 1) and penalty.requires_grad
    assert float(penalty) < 1e-20  # GIN is permutation invariant: no dropout noise, no batch statistics
    torch.manual_seed(1)
    twin(molecules64)  # the batch's own training forward, alone
    for (name, a), b in zip(model.named_buffers(), twin.buffers()):
        assert torch.equal(a, b), name

    data = molecules64.clone()
    data.eigvecs = torch.randn(data.num_nodes, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    reading = build("gin", dropout=0.5, pe="eigvecs", pe_dim=4).double().train()  # not sign-flip invariant
    flips = EquivarianceRegularizer(SignFlip(), reading.spec, batch_fraction=1.0)
    _, (penalty,) = stacked_forward(reading, data, [flips], torch.Generator().manual_seed(1))
    flipped = flips.sample(data, torch.Generator().manual_seed(1)).moved
    reading.dropout.eval()  # batch norm still on the statistics of the graphs and their copies together
    both = reading(concat([data, flipped]))
    by_hand = (both[5:] - both[:5]).pow(2).mean()
    assert float(penalty) > 1e-8 and float(penalty) == pytest.approx(float(by_hand), rel=1e-10)


def test_stacked_forward_is_one_call_and_reuses_outputs(molecules):
    calls = []
    model = build("naive_gnn")
    model.register_forward_hook(lambda *a: calls.append(1))
    # Several copies of a part of the batch each: still one call with the batch.
    regs = [
        EquivarianceRegularizer(SO3(), model.spec, n_samples=2),
        EquivarianceRegularizer(Permutation(), model.spec, n_samples=3, batch_fraction=0.6),
    ]
    out, penalties = stacked_forward(model, molecules, regs)
    assert len(calls) == 1 and len(penalties) == 2
    model.eval()
    assert torch.allclose(out, model(molecules), atol=1e-5)  # f(x) comes out of the stacked pass unchanged


def test_regularizer_spec_that_does_not_fit_the_batch(molecules):
    model = build("naive_gnn")
    reg = EquivarianceRegularizer(SO3(), Spec(fields={"x": "1o"}), weight=1.0)
    with pytest.raises(ValueError, match=r"field 'x': expected shape \(rows, 3\)"):
        stacked_forward(model, molecules, [reg])
    with pytest.raises(ValueError, match="layers: expected submodule names"):
        stacked_forward(model, molecules, [EquivarianceRegularizer(SO3(), model.spec, layers=["nope"])])
    with pytest.raises(ValueError, match="distance"):
        EquivarianceRegularizer(SO3(), model.spec, distance="cosine")


def test_schedules():
    assert Schedule()(0) == 1.0
    assert Schedule("linear", 4)(1) == pytest.approx(0.25) and Schedule("linear", 4)(9) == 1.0
    assert Schedule("cosine", 4)(2) == pytest.approx(0.5) and Schedule("cosine", 4)(0) == 0.0
    with pytest.raises(ValueError, match="schedule kind"):
        Schedule("exp")


def _fit(model, loaders, regularizers, epochs=15, **kw):
    trainer = Trainer(
        model, "regression", regularizers, groups=[SO3()], max_epochs=epochs, lr=3e-3, seed=0, progress=False, **kw
    )
    trainer.fit(*loaders)
    return trainer, trainer.evaluate(loaders[1])


def test_regularized_training_keeps_symmetry_on_real_molecules(chembl_loaders):
    """The default regularizer, untuned, cuts the SO(3) error 5x at about plain fine-tuning's MSE (mean of two
    seeds: 40 validation molecules make one seed's MSE move by 10-20%)."""
    plain, regularized = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        plain.append(_fit(build("naive_gnn"), chembl_loaders, [])[1])
        torch.manual_seed(seed)
        model = build("naive_gnn")
        regularized.append(_fit(model, chembl_loaders, [EquivarianceRegularizer(SO3(), model.spec)])[1])
    mean = lambda runs, key: sum(r[key] for r in runs) / len(runs)  # noqa: E731
    assert mean(regularized, "equivariance_error") * 5 <= mean(plain, "equivariance_error")
    assert mean(regularized, "mse") <= 1.1 * mean(plain, "mse")


def test_dual_ascent_follows_the_relative_violation_both_ways():
    import math

    spec = Spec(output="0e")
    term = EquivarianceRegularizer(SO3(), spec)
    # dual_floor=1: descent as fast as ascent (the default, 0.2, is checked below).
    c = ConstrainedEquivarianceRegularizer(
        term, epsilon=0.1, dual_lr=0.5, initial_multiplier=1.0, margin=1.0, dual_floor=1.0
    )
    c.step_update([0.15])
    assert float(c.multiplier) == pytest.approx(math.exp(0.5 * 0.5))  # log-space step on (R - ε) / ε
    c.step_update([0.6])
    assert float(c.multiplier) == pytest.approx(math.exp(0.25 + 0.5))  # still violated: rises, step clipped at 1
    c.step_update([0.0])
    assert float(c.multiplier) == pytest.approx(math.exp(0.25))  # satisfied: falls
    for _ in range(100):
        c.step_update([0.0])
    assert float(c.multiplier) == pytest.approx(1e-4)  # and stays in its range
    slow = ConstrainedEquivarianceRegularizer(term, epsilon=0.1, dual_lr=0.5, initial_multiplier=1.0, margin=1.0)
    slow.step_update([0.6])
    slow.step_update([0.0])
    assert float(slow.multiplier) == pytest.approx(math.exp(0.5 - 0.5 * 0.2))  # by default it falls 5x slower
    per_epoch = ConstrainedEquivarianceRegularizer(term, epsilon=0.1, dual_lr=0.5, dual_update="epoch", margin=1.0)
    per_epoch.step_update([0.6])
    assert float(per_epoch.multiplier) == 1.0  # epoch mode ignores steps
    per_epoch.end_epoch([0.6])
    assert float(per_epoch.multiplier) == pytest.approx(math.exp(0.5))
    # By default the training batches are pushed below 0.8 ε, so that held-out data meets ε.
    aiming = ConstrainedEquivarianceRegularizer(term, epsilon=0.1, dual_lr=0.5)
    aiming.step_update([0.09])
    assert float(aiming.multiplier) == pytest.approx(math.exp(0.5 * (0.09 - 0.08) / 0.1))
    with pytest.raises(ValueError, match="dual_update: expected 'step' or 'epoch'"):
        ConstrainedEquivarianceRegularizer(term, dual_update="often")
    with pytest.raises(ValueError, match="initial_multiplier: expected > 0"):
        ConstrainedEquivarianceRegularizer(term, initial_multiplier=0.0)


def test_homotopy_and_resilient_slack():
    spec = Spec(output="0e")
    c = ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), spec), epsilon=1e-3, homotopy=(1e-1, 2))
    assert c.epsilon == pytest.approx(1e-1)
    c.end_epoch([0.0])
    assert c.epsilon == pytest.approx(1e-2)
    c.end_epoch([0.0])
    assert c.epsilon == pytest.approx(1e-3)
    r = ConstrainedEquivarianceRegularizer(
        EquivarianceRegularizer(SO3(), spec), epsilon=0.01, dual_lr=1.0, resilient=True, slack_cost=4.0
    )
    r.step_update([0.5])
    assert r.slack == pytest.approx(float(r.multiplier) * 0.01 / 4.0) and r.slack > 0
    r.record(0.5)
    report = r.report()
    assert report["met"] is False and report["miss"] == pytest.approx(0.5 - 0.01 - r.slack)


def test_constrained_training_logs_multiplier_every_epoch(chembl_loaders):
    model = build("naive_gnn")
    reg = ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), model.spec), epsilon=1e-4, dual_lr=50.0)
    trainer, metrics = _fit(model, chembl_loaders, [reg], epochs=6)
    multipliers = [row[f"{reg.name}/multiplier"] for row in trainer.history]
    violations = [row[f"{reg.name}/violation"] for row in trainer.history]
    assert len(multipliers) == 6 and multipliers[0] > 0 and all(v == v for v in violations)
    assert metrics["equivariance_error"] < 0.5


def test_reachable_constraint_ends_met_and_unreachable_one_says_by_how_much(chembl_loaders):
    torch.manual_seed(0)
    model = build("naive_gnn")
    # 4 steps an epoch: a dual step of 1 (the multiplier may grow e-fold a step) reaches ε within the run;
    # the default 0.1 is meant for runs of hundreds of steps.
    term = EquivarianceRegularizer(SO3(), model.spec)
    reg = ConstrainedEquivarianceRegularizer(term, epsilon=0.02, dual_lr=1.0)
    trainer, _ = _fit(model, chembl_loaders, [reg], epochs=8)
    last = trainer.history[-1]
    assert last[f"{reg.name}/met"] == 1.0 and last[f"{reg.name}/val_penalty"] <= 0.02
    assert trainer.constraints[0]["met"] and trainer.constraints[0]["miss"] == 0.0 and not trainer.warnings
    model = build("naive_gnn")
    tight = ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), model.spec), epsilon=1e-9)
    trainer, _ = _fit(model, chembl_loaders, [tight], epochs=1)
    report = trainer.constraints[0]
    assert trainer.history[-1][f"{tight.name}/met"] == 0.0 and not report["met"]
    assert report["miss"] == pytest.approx(report["measured"] - 1e-9) and report["miss"] > 0
    assert any("NOT met" in w and f"{report['measured']:.3g}" in w for w in trainer.warnings)


def test_mixed_weights_separate_held_from_broken_symmetry():
    # Target: spread of atoms along z. Rotations about z (SO2 acting in 3D) keep it; general SO3 does not.
    from torch_geometric.loader import DataLoader

    from geoadapt.data import load

    torch.manual_seed(0)
    graphs = []
    for g in load("rdkit_chembl2321810", limit=60, progress=False).graphs:
        g = g.clone()
        g.pos = g.pos @ SO3().sample(1)[0].float().T  # random orientations, so the broken symmetry shows
        centered = g.pos - g.pos.mean(0)
        g.y = centered[:, 2:3].pow(2).mean(0, keepdim=True)
        graphs.append(g)
    model = build("naive_gnn")
    mixed = MixedEquivarianceRegularizer(
        [
            EquivarianceRegularizer(SO2(), model.spec, name="SO2(z)"),
            EquivarianceRegularizer(SO3(), model.spec, name="SO3"),
        ]
    )
    trainer = Trainer(model, "regression", [mixed], max_epochs=30, lr=3e-3, seed=0, progress=False)
    trainer.fit(DataLoader(graphs, batch_size=10, shuffle=True))
    weights = mixed.weights()
    assert weights["SO2(z)"] > 10 * weights["SO3"]
    assert sum(weights.values()) == pytest.approx(2.0, rel=0.05)  # only the split is learned
    assert "mixed/SO3/weight" in trainer.history[-1]


def test_lazy_regularization_skips_steps_and_rescales(molecules):
    model = build("naive_gnn")
    model.eval()
    lazy = EquivarianceRegularizer(SO3(), model.spec, every=3)
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].num_graphs))
    _, (skipped,) = stacked_forward(model, molecules, [lazy], step=1)
    assert float(skipped) == 0.0 and calls == [5]  # no copies on a skipped step
    gen = torch.Generator().manual_seed(0)
    _, (active,) = stacked_forward(model, molecules, [lazy], torch.Generator().manual_seed(0), step=3)
    _, (plain,) = stacked_forward(model, molecules, [EquivarianceRegularizer(SO3(), model.spec)], gen)
    assert float(active) == pytest.approx(3 * float(plain), rel=1e-5)  # scaled by the interval
    for bad in (0, 1.5, "often"):
        with pytest.raises(ValueError, match="every"):
            EquivarianceRegularizer(SO3(), model.spec, every=bad)


def test_lazy_by_default_except_under_a_multiplier():
    """``every="auto"`` is 2 for the plain regularizer; constrained and mixed terms left at "auto" run every step,
    an interval the user asked for is kept."""
    spec = Spec(fields={"pos": "1o"}, output="0e")
    assert EquivarianceRegularizer(SO3(), spec).every == 2
    assert ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), spec)).term.every == 1
    assert ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), spec, every=3)).term.every == 3
    mixed = MixedEquivarianceRegularizer(
        [EquivarianceRegularizer(SO3(), spec), EquivarianceRegularizer(SO3(), spec, every=2)]
    )
    assert [t.every for t in mixed.terms] == [1, 2]


def test_auto_weight_sets_the_gradient_ratio_then_smooths_it():
    reg = EquivarianceRegularizer(SO3(), Spec(fields={"pos": "1o"}, output="0e"), balance_ratio=0.2)
    reg.balance(task_grad_norm=2.0, penalty_grad_norm=8.0)
    assert reg.weight == pytest.approx(0.2 * 2.0 / 8.0)  # the first balance: the ratio exactly
    reg.balance(task_grad_norm=2.0, penalty_grad_norm=1.0)
    assert reg.weight == pytest.approx(math.exp(0.7 * math.log(0.05) + 0.3 * math.log(0.4)))
    before = reg.weight
    reg.balance(task_grad_norm=1.0, penalty_grad_norm=0.0)  # an exact model: nothing to balance against
    assert reg.weight == before
    reg.balance(task_grad_norm=8.6, penalty_grad_norm=1.4e-7)  # an exact model in float32: round-off only
    assert reg.weight == before


def test_an_exact_model_is_balanced_less_and_less_often():
    """Each balance that finds the penalty's gradient at round-off doubles the interval (up to 16x); a balance
    that sets the weight brings it back."""
    reg = EquivarianceRegularizer(SO3(), Spec(fields={"pos": "1o"}, output="0e"), every=2, balance_every=5)
    due = lambda: [step for step in range(400) if reg.balances_at(step)]  # noqa: E731
    assert due()[:3] == [0, 10, 20]
    reg.balance(task_grad_norm=8.6, penalty_grad_norm=1.4e-7)
    assert due()[:3] == [0, 20, 40]
    for _ in range(6):
        reg.balance(task_grad_norm=8.6, penalty_grad_norm=1.4e-7)
    assert due()[:3] == [0, 160, 320]  # capped at 16x
    reg.balance(task_grad_norm=8.6, penalty_grad_norm=1.0)
    assert due()[:3] == [0, 10, 20]


def test_states_saved_in_older_layouts_still_load():
    """States saved before the balancing state had its own object (flat ``weight_value`` ...), before the back-off
    (no ``round_off_streak``) and before the step and epoch counts load, alone and nested in constrained and mixed
    regularizers; a missing key without a default is still an error."""
    spec = Spec(fields={"pos": "1o"}, output="0e")
    before_back_off = {"weight_value": torch.tensor(3.5), "balance_steps": torch.tensor(4)}
    reg = EquivarianceRegularizer(SO3(), spec)
    reg.balancer.round_off_streak.fill_(2)
    reg.steps_taken.fill_(7)
    reg.load_state_dict(dict(before_back_off))
    assert reg.weight == 3.5 and int(reg.balancer.balance_steps) == 4
    assert int(reg.balancer.round_off_streak) == 0 and int(reg.steps_taken) == 0
    flat = {"weight_value": 1.0, "balance_steps": 0, "round_off_streak": 1}
    flat_term = {k: torch.tensor(v) for k, v in flat.items()}
    constrained = ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), spec))
    scalars = {"multiplier": 2.0, "slack_value": 0.0, "epoch": 3, "violation": 0.1, "measured": 0.2}
    saved = {k: torch.tensor(v) for k, v in scalars.items()} | {f"term.{k}": v for k, v in flat_term.items()}
    constrained.load_state_dict(saved)
    assert float(constrained.multiplier) == 2.0 and int(constrained.epoch) == 3
    assert int(constrained.term.balancer.round_off_streak) == 1
    mixed = MixedEquivarianceRegularizer([EquivarianceRegularizer(SO3(), spec), EquivarianceRegularizer(SO2(), spec)])
    saved = {"log_scale": torch.tensor([0.5, -0.5])}
    saved |= {f"terms.{i}.{k}": v * (i + 2) for i in range(2) for k, v in flat_term.items()}
    mixed.load_state_dict(saved)
    assert [t.weight for t in mixed.terms] == [2.0, 3.0] and float(mixed.log_scale[0]) == 0.5
    # The layout saved now comes back as it was.
    fresh = ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), spec))
    constrained.record(0.25)
    fresh.load_state_dict(constrained.state_dict())
    pairs = list(zip(fresh.state_dict().values(), constrained.state_dict().values()))
    assert all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in pairs)
    assert fresh.forecast.points == constrained.forecast.points == [(3, 0.25, 2.0)]  # the forecast's record too
    del before_back_off["balance_steps"]
    with pytest.raises(RuntimeError, match="balance_steps"):
        reg.load_state_dict(before_back_off)


def test_auto_balance_ratio_follows_the_distance():
    spec = Spec(fields={"pos": "1o"}, output="0e")
    regression, classifier = EquivarianceRegularizer(SO3(), spec), EquivarianceRegularizer(SO3(), spec)
    components_of(nn.ModuleList([regression]), Regression())
    components_of(nn.ModuleList([classifier]), Classification())
    assert (regression.distance, classifier.distance) == ("mse", "logit")
    assert regression.balance_ratio > classifier.balance_ratio  # a classifier's penalty gets the smaller share
    regression.balance(task_grad_norm=1.0, penalty_grad_norm=1.0)
    classifier.balance(task_grad_norm=1.0, penalty_grad_norm=1.0)
    assert regression.weight == pytest.approx(regression.balance_ratio)
    assert classifier.weight == pytest.approx(classifier.balance_ratio)
    assert EquivarianceRegularizer(SO3(), spec, balance_ratio=0.7, distance="js").balance_ratio == 0.7
    for bad in ("often", 0.0, -1):
        with pytest.raises(ValueError, match="balance_ratio"):
            EquivarianceRegularizer(SO3(), spec, balance_ratio=bad)


def test_auto_weight_is_balanced_on_every_graph_and_trains_on_a_fraction(chembl_loaders):
    """Balance steps copy the whole batch (the penalty's gradient norm is not inflated by a small sample's
    noise); the other steps copy ``batch_fraction`` of it."""
    for every, expected in ((1, [32 + 32, 32 + 8, 32 + 32, 24 + 6]), (2, [32 + 32, 32, 32 + 8, 24])):
        # every=2 (the default): the penalty on steps 0 and 2 only, balanced on the first of every 2 of those
        model = build("naive_gnn")
        reg = EquivarianceRegularizer(SO3(), model.spec, batch_fraction=0.25, balance_every=2, every=every)
        sizes: list[int] = []
        model.register_forward_pre_hook(
            lambda module, args, sizes=sizes: sizes.append(args[0].num_graphs) if module.training else None
        )
        trainer = Trainer(model, "regression", [reg], max_epochs=1, progress=False, seed=0)
        trainer.fit(chembl_loaders[0])  # 120 molecules in batches of 32: 32, 32, 32, 24
        assert sizes == expected
        assert trainer.history[-1][f"{reg.name}/weight"] != 1.0  # it was set


def test_balancing_steps_reuse_their_gradients_exactly(chembl_loaders, monkeypatch):
    """On a balancing step the task's and the penalty's gradients are already computed: the step adds them
    (task + weight x penalty) instead of back-propagating the loss again, and must move the model as that
    backward pass would."""

    from geoadapt.train import step

    def train(reuse: bool, weight_scale: float = 1.0) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = build("naive_gnn")
        reg = EquivarianceRegularizer(SO3(), model.spec, balance_every=1)  # every step balances
        trainer = Trainer(model, "regression", [reg], max_epochs=1, progress=False, seed=0)
        balance = step.balance

        def patched(*args):
            known = balance(*args)
            reg.weight = reg.weight * weight_scale
            return known if reuse else None  # None: the full backward pass

        monkeypatch.setattr(step, "balance", patched)
        trainer.fit(chembl_loaders[0])
        monkeypatch.setattr(step, "balance", balance)
        return [p.detach().clone() for p in model.parameters()]

    reference, reused = train(reuse=False), train(reuse=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(reference, reused))
    # The comparison can fail: a penalty weighted 3x apart moves the parameters visibly.
    heavier = train(reuse=True, weight_scale=3.0)
    assert max(float((a - b).abs().max()) for a, b in zip(reference, heavier)) > 1e-3


def test_divergences_of_equal_predictions_are_not_negative():
    """KL and Jensen-Shannon of identical logits are zero; round-off must not make a penalty negative."""
    from geoadapt.equivariance import js_logits, kl_logits

    logits = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0)) * 8
    for divergence in (js_logits, kl_logits):
        for same in (logits, torch.cat([logits, -logits], 1)):
            values = divergence(same, same.clone())
            assert float(values.min()) >= 0 and float(values.max()) < 1e-6
