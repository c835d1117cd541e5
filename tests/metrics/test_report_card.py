"""The report card: rows per group that agree with the architecture's guarantees, per-layer and force rows."""

from __future__ import annotations

import torch

from geoadapt.metrics.report_card import card_text, layer_names, report_card
from geoadapt.models import build
from geoadapt.models.potential import Forces


def card(name: str, molecules, **options) -> tuple[dict, torch.nn.Module]:
    torch.manual_seed(0)
    model = build(name).eval()
    return report_card(model, model, [molecules], ["so3", "perm"], model.spec, samples=4, **options), model


def test_rows_follow_what_each_architecture_guarantees(molecules):
    invariant, e3nn = card("e3nn_gnn", molecules)
    naive, gnn = card("naive_gnn", molecules)
    assert invariant["graphs"] == naive["graphs"] == molecules.num_graphs == 5
    assert [row["group"] for row in naive["groups"]] == ["SO3", "Permutation()"]
    (so3, perm), (naive_so3, naive_perm) = invariant["groups"], naive["groups"]
    assert so3["max_error"] < 1e-4 and naive_so3["error"] > 1e-3  # e3nn: invariant by construction; naive: not
    assert perm["max_error"] < 1e-5 and naive_perm["max_error"] < 1e-5  # both sum over nodes
    assert so3["score"] > naive_so3["score"] and list(so3["absolute"]) == ["1x0e"]
    assert set(so3["layers"]) == set(layer_names(e3nn)) == {"layers.0", "layers.1"}
    assert set(naive_so3["layers"]) == {"convs.0", "convs.1", "convs.2"} and "consistency" not in naive_so3
    assert "forces" not in naive and "Forces" not in card_text({**naive, **header()})


def test_forces_of_an_energy_model_get_their_own_rows(molecules):
    torch.manual_seed(0)
    energy = build("e3nn_gnn").eval()
    measured = report_card(energy, energy, [molecules], ["so3"], energy.spec, samples=4, forces=Forces(energy))
    (row,) = measured["forces"]
    assert row["group"] == "SO3" and list(row["absolute"]) == ["1x1o"] and row["max_error"] < 1e-3
    text = card_text({**measured, **header()})
    assert "Forces (-dE/dpos" in text and text.count("| SO3 ") == 3  # outputs, forces and per-layer tables


def test_classifiers_report_their_consistency_and_the_text_has_a_row_per_group(molecules):
    measured, _ = card("naive_gnn", molecules, classifier=True)
    assert all(0.0 <= row["consistency"] <= 1.0 for row in measured["groups"])
    text = card_text({**measured, **header()})
    lines = text.splitlines()
    assert lines[0] == "Equivariance report card: naive_gnn from run/model.pt on esol (test, 5 inputs measured)"
    assert "| consistency |" in lines[2] and "Per layer" in text
    assert sum(line.startswith(("| SO3", "| Permutation()")) for line in lines) == 4  # outputs and layers tables


def header() -> dict:
    return {"checkpoint": "run/model.pt", "arch": "naive_gnn", "data": "esol", "split": "test"}
