"""The two promises (``docs/promises.md``): the classifier table of ``benchmarks/promise_classification.py``, the
regression pairs of ``benchmarks/molecular_adaptation.py`` and the bounds of ``benchmarks/constraint_bounds.py``."""

from __future__ import annotations

from results_data import J, table
from results_molecular import pairs, within_or_better

CLASSIFIER_FILES = ("promise_classification_molecules.json", "promise_classification_tu.json")
# The TU sets measured before the self-set weight stopped at ENOUGH (and with the former Jensen-Shannon default).
NO_FLOOR_FILE = "promise_classification_tu_no_floor.json"
BOUND_FILES = ("constraint_bounds_1e-3.json", "constraint_bounds_1e-2.json")
SET_NAMES = {"bbbp": "BBBP", "rdkit_chembl2321810": "ChEMBL2321810 (binary)", "mutag": "MUTAG", "ptc_mr": "PTC_MR"}


def classifier_rows(files: tuple[str, ...] = CLASSIFIER_FILES) -> list[dict]:
    """Every summary row of the classifier benchmark (both files)."""
    return [row for path in files for row in J(path)["rows"]]


def classifier_runs() -> list[dict]:
    """Every run of the classifier benchmark."""
    return [run for path in CLASSIFIER_FILES for run in J(path)["runs"]]


def _pm(row: dict, key: str) -> str:
    return f"{row[key]:.3f} ± {row[key + '_std']:.3f}"


def classifier_table(
    methods: tuple[str, ...] = ("plain", "default", "js"), files: tuple[str, ...] = CLASSIFIER_FILES
) -> str:
    """ROC-AUC on given and moved test data, accuracy, the error cut and the verdict of every setting."""
    rows = []
    for r in classifier_rows(files):
        if r["method"] not in methods:
            continue
        verdict = "-" if r["method"] == "plain" else ("kept" if r["kept"] else "**broken**")
        heads = "1 logit" if r["classes"] == 1 else "2 logits"
        rows.append(
            [SET_NAMES.get(r["set"], r["set"]), r["backbone"], heads, r["method"], _pm(r, "roc_auc"),
             _pm(r, "moved_roc_auc"), _pm(r, "accuracy"), _pm(r, "moved_accuracy"),
             "-" if r["method"] == "plain" else f"{r['error_cut']:.1f}x", f"{r['collapsed']}/{r['runs']}", verdict]
        )  # fmt: skip
    header = ["set", "backbone", "head", "method", "ROC-AUC given", "ROC-AUC moved", "accuracy given",
              "accuracy moved", "error cut", "collapse detected", "promise"]  # fmt: skip
    return table(header, rows)


def classifier_count(method: str = "default", files: tuple[str, ...] = CLASSIFIER_FILES) -> tuple[int, int]:
    """``(kept, settings)`` of ``method`` over every set, backbone and head."""
    mine = [r for r in classifier_rows(files) if r["method"] == method]
    return sum(r["kept"] for r in mine), len(mine)


def broken(method: str = "default") -> list[dict]:
    """The settings where ``method`` breaks the promise, with which side (given, moved) and by how much."""
    out = []
    for r in classifier_rows():
        if r["method"] != method or r["kept"]:
            continue
        plain = next(
            p for p in classifier_rows() if p["method"] == "plain" and (p["set"], p["backbone"], p["classes"]) ==
            (r["set"], r["backbone"], r["classes"])
        )  # fmt: skip
        out.append(
            {
                "name": f"{SET_NAMES.get(r['set'], r['set'])} {r['backbone']} {r['classes']} logit(s)",
                "given": r["roc_auc"] - plain["roc_auc"],
                "given_std": plain["roc_auc_std"],
                "moved": r["moved_roc_auc"] - plain["moved_roc_auc"],
                "moved_std": plain["moved_roc_auc_std"],
            }
        )
    return out


def collapse_counts() -> dict[str, tuple[int, int]]:
    """``{method: (runs with a detected collapse, runs)}``."""
    out: dict[str, tuple[int, int]] = {}
    for run in classifier_runs():
        fired, total = out.get(run["method"], (0, 0))
        out[run["method"]] = (fired + (run["collapse_epoch"] is not None), total + 1)
    return out


def regression_table() -> str:
    """The regression pairs of the molecular table: the default against fine-tuning on given and moved molecules."""
    rows = []
    for target, backbone, result, metric in pairs():
        if metric != "rmse":
            continue
        s = result["summary"]
        given = within_or_better(s["regularizer"]["rmse"][0], s["finetune"]["rmse"], False)
        moved = within_or_better(s["regularizer"]["moved_rmse"][0], s["finetune"]["moved_rmse"], False)
        rows.append(
            [target, backbone, f"{s['finetune']['rmse'][0]:.3f} ± {s['finetune']['rmse'][1]:.3f}",
             f"{s['regularizer']['rmse'][0]:.3f} ± {s['regularizer']['rmse'][1]:.3f}",
             f"{s['finetune']['moved_rmse'][0]:.3f} ± {s['finetune']['moved_rmse'][1]:.3f}",
             f"{s['regularizer']['moved_rmse'][0]:.3f} ± {s['regularizer']['moved_rmse'][1]:.3f}",
             f"{result['checks']['regularizer']['error_cut']:.1f}x", "kept" if given and moved else "**broken**"]
        )  # fmt: skip
    header = ["target", "backbone", "RMSE fine-tuning", "RMSE default", "moved: fine-tuning", "moved: default",
              "error cut", "promise"]  # fmt: skip
    return table(header, rows)


def bound_totals() -> list[dict]:
    """Per controller and ε: runs met, kept (met or warned early), false alarms, over every target and backbone."""
    return [t for path in BOUND_FILES for t in J(path)["totals"]]


def bound_table() -> str:
    """The totals as a table."""
    rows = [
        [t["controller"], f"{t['epsilon']:g}", f"{t['met']}/{t['runs']}", f"{t['warned_early']}",
         f"{t['kept']}/{t['runs']} ({t['kept'] / t['runs']:.0%})", t["false_alarms"]]
        for t in bound_totals()
    ]  # fmt: skip
    header = ["controller (kp/ema/floor)", "ε", "met", "missed, warned early", "kept", "false alarms"]
    return table(header, rows)


def bound_rows_table() -> str:
    """Per target, backbone, ε and controller: met, warned, largest miss, task metric."""
    rows = [
        [r["target"], r["backbone"], f"{r['epsilon']:g}", r["controller"], f"{r['met']}/{r['runs']}",
         f"{r['warned_early']}/{r['runs'] - r['met']}", f"{r['largest_miss']:.1e}",
         f"{r['metric']:.3f} ± {r['metric_std']:.3f}"]
        for path in BOUND_FILES for r in J(path)["rows"]
    ]  # fmt: skip
    header = ["target", "backbone", "ε", "controller", "met", "missed, warned early", "largest miss", "task metric"]
    return table(header, rows)


def no_floor_table() -> str:
    """MUTAG and PTC_MR before the weight stopped at ``ENOUGH``: the default then, the former default, plain."""
    rows = [
        [SET_NAMES[r["set"]], "1 logit" if r["classes"] == 1 else "2 logits", r["method"], _pm(r, "roc_auc"),
         _pm(r, "moved_roc_auc"), "-" if r["method"] == "plain" else f"{r['error_cut']:.1f}x",
         "-" if r["method"] == "plain" else ("kept" if r["kept"] else "**broken**")]
        for r in classifier_rows((NO_FLOOR_FILE,))
    ]  # fmt: skip
    return table(["set", "head", "method", "ROC-AUC given", "ROC-AUC moved", "error cut", "promise"], rows)


def collapse_history_counts() -> dict[str, tuple[int, int]]:
    """``{method: (runs whose validation share of one class ever passed halfway to a single class, runs)}``:
    how often the detector's first condition alone would have fired."""
    out: dict[str, tuple[int, int]] = {}
    for run in classifier_runs():
        hist = [h for h in run.get("history", []) if h.get("val_predicted_majority") is not None]
        one_sided = any(
            h["val_predicted_majority"] >= h["val_label_majority"] + 0.5 * (1 - h["val_label_majority"]) for h in hist
        )
        seen, total = out.get(run["method"], (0, 0))
        out[run["method"]] = (seen + one_sided, total + 1)
    return out


def trace_table(path: str, method: str = "regularizer") -> str:
    """Per epoch of one traced run (``benchmarks/classifier_trace.py``): the self-set weight, the task's and the
    weighted penalty's gradient norms and their components along the output bias (the logits' common shift), the
    share of the most predicted class, the lowest class recall and ROC-AUC (validation)."""
    fmt = lambda v, spec=".2g": "-" if v is None else f"{v:{spec}}"  # noqa: E731
    rows = [
        [r["epoch"], fmt(r["weight"], ".3g"), fmt(r["probe_task_grad"]), fmt(r["probe_penalty_grad"]),
         fmt(r["probe_task_bias_grad"]), fmt(r["probe_penalty_bias_grad"]), fmt(r["share"]),
         fmt(r["min_class_recall"]), fmt(r["roc_auc"], ".3f")]
        for r in J(path)["runs"][method]
    ]  # fmt: skip
    header = ["epoch", "weight", "task grad", "penalty grad (weighted)", "task: shift", "penalty: shift",
              "largest class share", "lowest class recall", "ROC-AUC"]  # fmt: skip
    return table(header, rows)
