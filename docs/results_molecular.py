"""The molecular benchmark (``benchmarks/molecular_adaptation.py``): four targets, two backbones, every method.

Tables and the checks the prose of ``results/molecular.md`` and ``results/index.md`` quotes.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from results_data import J, pm, table

TARGETS = ("rdkit_chembl2321810", "esol", "lipophilicity", "bbbp")
METHOD_COLUMNS = ("finetune", "regularizer", "constrained", "augment", "canonicalize", "frame_average")


def molecular(folder: str = "") -> dict[str, dict]:
    """``{target: json}`` of one output folder of the molecular benchmark."""
    prefix = f"{folder}/" if folder else ""
    return {t: J(f"{prefix}molecular_adaptation_{t}.json") for t in TARGETS}


def pairs(folder: str = "") -> list[tuple[str, str, dict, str]]:
    """``(target, backbone, result, metric)`` for every target/backbone pair of a folder."""
    out = []
    for target, data in molecular(folder).items():
        metric = "roc_auc" if data["task"] == "classification" else "rmse"
        out += [(target, backbone, result, metric) for backbone, result in data["backbones"].items()]
    return out


def kept(check: dict) -> bool:
    """The promise: at least a 10x cut at a task metric within one std of fine-tuning (or better)."""
    return check["error_cut"] >= 10 and check["within_one_std_or_better"]


def promise_count(folder: str = "", method: str = "regularizer") -> tuple[int, int]:
    """How many target/backbone pairs keep the promise, and of how many."""
    found = [kept(result["checks"][method]) for _, _, result, _ in pairs(folder)]
    return sum(found), len(found)


def time_ratio(folder: str = "", method: str = "regularizer") -> float:
    """Median over the pairs of ``method``'s time against fine-tuning's."""
    return statistics.median(
        r["summary"][method]["seconds"][0] / r["summary"]["finetune"]["seconds"][0] for _, _, r, _ in pairs(folder)
    )


def _cell(result: dict, method: str, metric: str) -> str:
    summary = result["summary"]
    text = pm(summary[method][metric])
    error = f"{summary[method]['equivariance_error'][0]:#.2g}"
    if method in result["checks"]:
        check = result["checks"][method]
        dagger = "" if check["within_one_std_or_better"] else " †"
        return f"{text} ({error}, {check['error_cut']:.1f}x{dagger})"
    return f"{text} ({error})" if method in ("finetune", "augment") else text


def molecular_table() -> str:
    """Task metric (SO(3) error, cut) of every method on every target and backbone, 3 seeds."""
    rows = []
    for target, backbone, result, metric in pairs():
        cells = [_cell(result, m, metric) for m in METHOD_COLUMNS]
        met = result["summary"]["constrained"]["constraint_met"]
        rows.append([target, backbone, "ROC-AUC" if metric == "roc_auc" else "RMSE", *cells[:3], met, *cells[3:]])
    header = ["target", "backbone", "metric", "finetune (error)", "regularizer (error, cut)"]
    header += ["constrained (error, cut)", "constraint met", "augment (error)", "canonicalize", "frame average"]
    return table(header, rows)


def moved_table() -> str:
    """The task metric on the test molecules each rotated at random."""
    rows = []
    for target, backbone, result, metric in pairs():
        cells = [pm(result["summary"][m][f"moved_{metric}"]) for m in METHOD_COLUMNS]
        rows.append([target, backbone, "ROC-AUC" if metric == "roc_auc" else "RMSE", *cells])
    header = ["target", "backbone", "metric, moved", "finetune", "regularizer", "constrained", "augment"]
    return table(header + ["canonicalize", "frame average"], rows)


def check(target: str, backbone: str, method: str = "regularizer", folder: str = "") -> dict:
    """The promise check of one pair, with fine-tuning's metric and std added."""
    data = molecular(folder)[target]
    metric = "roc_auc" if data["task"] == "classification" else "rmse"
    result = data["backbones"][backbone]
    return {**result["checks"][method], "metric": metric, "finetune": result["summary"]["finetune"][metric]}


def summary(target: str, backbone: str, method: str, key: str, folder: str = "") -> list[float]:
    """``[mean, std]`` of one column of the molecular benchmark."""
    return molecular(folder)[target]["backbones"][backbone]["summary"][method][key]


def constraint_runs(folder: str = "") -> list[dict]:
    """Every constraint verdict of the constrained runs of a folder."""
    return [c for _, _, r, _ in pairs(folder) for run in r["runs"] for c in run["constraints"]]


def collapsed_runs(target: str, folder: str = "") -> int:
    """Runs of ``target`` whose Trainer warned that the classifier collapsed to one class."""
    data = molecular(folder)[target]
    runs = [run for r in data["backbones"].values() for run in r["runs"]]
    return sum(any("classifier collapsed" in w for w in run["warnings"]) for run in runs)


def five_seeds_table() -> str:
    """Fine-tuning against the default and the every-graph regularizer, 5 seeds."""
    default, whole = pairs("molecular_adaptation_5_seeds/default"), pairs("molecular_adaptation_5_seeds/whole_batch")
    rows = []
    for (target, backbone, a, metric), (_, _, b, _) in zip(default, whole):
        fine = a["summary"]["finetune"]
        cells = [f"{pm(fine[metric])} ({fine['equivariance_error'][0]:#.2g})"]
        for result in (a, b):
            c = result["checks"]["regularizer"]
            mark = " ✓" if kept(c) else "" if c["within_one_std_or_better"] else " †"
            text = f"{pm(result['summary']['regularizer'][metric])} ({c['error_cut']:.1f}x, {c['metric_change']:+.3f})"
            cells.append(text + mark)
        rows.append([target, backbone, "ROC-AUC" if metric == "roc_auc" else "RMSE", *cells])
    header = ["target", "backbone", "metric", "finetune (error)", "default: quarter of the batch, every other step"]
    return table(header + ["every graph, every step"], rows)


def better(value: float, reference: float, classification: bool) -> bool:
    """Whether ``value`` is better than ``reference`` (higher ROC-AUC, lower RMSE)."""
    return value > reference if classification else value < reference


def within_or_better(mean: float, base: Sequence[float], classification: bool) -> bool:
    """Whether ``mean`` is better than fine-tuning's mean or within its std."""
    return better(mean, base[0], classification) or abs(mean - base[0]) <= base[1]


def pairs_where(test, folder: str = "") -> list[str]:
    """``"target backbone"`` of the pairs where ``test(result, metric, classification)`` holds."""
    return [f"{t} {b}" for t, b, r, m in pairs(folder) if test(r, m, m == "roc_auc")]


def regularizer_within(folder: str = "", method: str = "regularizer") -> list[str]:
    """Pairs where ``method``'s task metric is within fine-tuning's std or better."""
    return pairs_where(lambda r, m, c: r["checks"][method]["within_one_std_or_better"], folder)


def better_beyond_std(method: str = "regularizer", folder: str = "") -> list[str]:
    """Pairs where ``method`` beats fine-tuning by more than fine-tuning's std."""

    def test(r: dict, m: str, c: bool) -> bool:
        base, mine = r["summary"]["finetune"][m], r["summary"][method][m][0]
        return better(mine, base[0], c) and abs(mine - base[0]) > base[1]

    return pairs_where(test, folder)


def moved_within(method: str = "regularizer", folder: str = "") -> list[str]:
    """Pairs where ``method`` is better than fine-tuning or within its std on the rotated test molecules."""

    def test(r: dict, m: str, c: bool) -> bool:
        return within_or_better(r["summary"][method][f"moved_{m}"][0], r["summary"]["finetune"][f"moved_{m}"], c)

    return pairs_where(test, folder)


def exact_within(method: str, folder: str = "") -> list[str]:
    """Pairs where an exact method's task metric is better than fine-tuning's or within its std."""
    return pairs_where(
        lambda r, m, c: within_or_better(r["summary"][method][m][0], r["summary"]["finetune"][m], c), folder
    )


def cuts(folder: str = "", method: str = "regularizer") -> list[float]:
    """``method``'s SO(3) error cut against fine-tuning on every pair."""
    return [r["checks"][method]["error_cut"] for _, _, r, _ in pairs(folder)]


def time_ratios(method: str, folder: str = "") -> list[float]:
    """``method``'s time against fine-tuning's on every pair."""
    return [r["summary"][method]["seconds"][0] / r["summary"]["finetune"]["seconds"][0] for _, _, r, _ in pairs(folder)]


def seed_spread(target: str, backbone: str, method: str = "regularizer", folder: str = "") -> float:
    """Largest over smallest SO(3) error of ``method`` across seeds."""
    runs = molecular(folder)[target]["backbones"][backbone]["runs"]
    errors = [run["metrics"]["equivariance_error"] for run in runs if run["method"] == method]
    return max(errors) / min(errors)


def best_method(target: str, backbone: str, folder: str = "") -> str:
    """The method with the best task metric on one pair."""
    data = molecular(folder)[target]
    classification = data["task"] == "classification"
    metric = "roc_auc" if classification else "rmse"
    ranked = sorted(data["backbones"][backbone]["summary"].items(), key=lambda item: item[1][metric][0])
    return ranked[-1 if classification else 0][0]


def seeds(folder: str = "") -> int:
    """How many seeds a folder of the molecular benchmark ran."""
    return len({run["seed"] for _, _, r, _ in pairs(folder) for run in r["runs"]})
