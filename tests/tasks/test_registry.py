"""One registry of tasks, read by the Trainer, the command line, the data loaders and the dataset cards; no module
outside ``geoadapt/tasks/`` branches on a task's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from geoadapt.data import build_molecules, card_names, csv_card, read_card
from geoadapt.groups import SO3
from geoadapt.models import build
from geoadapt.regularizers import EquivarianceRegularizer
from geoadapt.tasks import TASKS, Classification, Potential, Regression, Task, make_task, register_task, task_names
from geoadapt.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = {"regression", "classification", "potential"}


def task_name_comparisons(path: Path, names: set[str], root: Path = ROOT) -> list[str]:
    """Comparisons of a task-like value (a name or attribute containing ``task``) with a task's name."""

    def named_task(node: ast.AST) -> bool:
        text = ast.unparse(node)
        return "task" in text.lower() and not isinstance(node, ast.Constant)

    def literals(node: ast.AST) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*(literals(e) for e in node.elts)) if node.elts else set()
        return set()

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(named_task(s) for s in sides) and any(literals(s) & names for s in sides):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


KEPT: set[str] = set()  # modules allowed to compare a task's name (none)


def test_no_module_outside_the_tasks_package_branches_on_a_task_name():
    modules = [p for p in (ROOT / "geoadapt").rglob("*.py") if "tasks" not in p.relative_to(ROOT / "geoadapt").parts]
    found = [hit for path in modules for hit in task_name_comparisons(path, set(task_names()))]
    assert [hit for hit in found if hit.split(":")[0] not in KEPT] == []
    assert "task ==" not in (ROOT / "geoadapt" / "train" / "trainer.py").read_text()


def test_the_scan_finds_a_branch_on_a_task_name(tmp_path):
    """The scan above can fail: it sees branches like those the Trainer used to have."""
    source = 'if self.task == "potential":\n    pass\nx = task in ("regression", "other")\ny = spec == "potential"\n'
    (tmp_path / "branchy.py").write_text(source)
    hits = task_name_comparisons(tmp_path / "branchy.py", BUILT_IN, root=tmp_path)
    assert [h.split(": ", 1)[1] for h in hits] == ["self.task == 'potential'", "task in ('regression', 'other')"]


def test_the_built_in_tasks_are_registered_by_name():
    assert BUILT_IN <= set(task_names())
    assert (TASKS["regression"], TASKS["classification"], TASKS["potential"]) == (Regression, Classification, Potential)
    assert isinstance(make_task("potential", {"stress_weight": 0.0}), Potential)
    with pytest.raises(
        ValueError, match=r"task: expected one of \[.*'regression'.*\] or a geoadapt.tasks.Task, got 'ranking'"
    ):
        make_task("ranking")
    with pytest.raises(
        ValueError, match=r"task_options: expected keys among \['normalize_targets', 'keep_normalization'\]"
    ):
        make_task("regression", {"force_weight": 1.0})
    with pytest.raises(ValueError, match="task_options: expected them with a task name"):
        make_task(Regression(), {"normalize_targets": False})
    with pytest.raises(TypeError, match="register_task: expected a subclass of geoadapt.tasks.Task"):
        register_task(object)


def test_every_dataset_card_names_a_registered_task_and_so_must_a_csv_card(tmp_path):
    for name in card_names():
        assert read_card(name)["task"] in task_names()
    assert csv_card(tmp_path / "x.csv", task="classification")["metric"] == Classification.headline_metric
    with pytest.raises(ValueError, match=r"task: expected a task of dataset cards among .*, got 'potential'"):
        csv_card(tmp_path / "x.csv", task="potential")  # potentials read labelled structures, not cards
    with pytest.raises(ValueError, match=r"task: expected a task of dataset cards among .*, got 'ranking'"):
        build_molecules("x", ["CCO"], [[1.0]], task="ranking", cache=False, progress=False)


class Dipole(Task):
    """A graph-level vector target read from ``batch.dipole``: a task the library does not have."""

    name = "dipole_test"

    def split(self, batch):
        return batch, batch.dipole

    def loss(self, view, out, targets, inputs):
        return F.mse_loss(out, targets)

    def metrics(self, predictor, batches):
        errors = torch.cat([(predictor(x) - y).norm(dim=-1) for x, y in batches])
        return {"rmse": float(errors.pow(2).mean().sqrt())}


def test_a_user_registered_task_trains_by_name_and_is_known_to_the_cards(molecules):
    register_task(Dipole)
    try:
        batch = molecules.clone()
        centered = batch.pos - batch.pos.mean(0)
        from torch_geometric.nn import global_add_pool

        batch.dipole = global_add_pool(centered, batch.batch)  # rotates with the molecule
        model = build("egnn", in_dim=17, output="1o", hidden=8, num_layers=1)
        reg = EquivarianceRegularizer(SO3(), model.spec)
        trainer = Trainer(model, "dipole_test", [reg], max_epochs=2, lr=1e-2, groups=[], progress=False)
        history = trainer.fit([batch], [batch])
        assert isinstance(trainer.task, Dipole) and reg.distance == "mse" and history[-1]["val_rmse"] > 0
        assert csv_card("x.csv", task="dipole_test")["metric"] == "rmse"
    finally:
        TASKS.pop("dipole_test")
