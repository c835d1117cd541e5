"""The other benchmarks: regularizer overhead, measuring, backbones, dataset loading, graph classification,
SevenNet-0 and the demo. One table builder per table the pages show.
"""

from __future__ import annotations

from collections.abc import Sequence

from results_data import J, table

# Regularizer overhead (benchmarks/regularizer_overhead.py).


def overhead_rows(path: str = "regularizer_overhead.json") -> dict[tuple[str, str], dict]:
    """``{(model, "n/f/k" or "plain" or "default"): row}``."""
    out = {}
    for row in J(path)["rows"]:
        config = row["config"]
        label = (
            "plain" if config == "plain" else "/".join(str(config[k]) for k in ("n_samples", "batch_fraction", "every"))
        )
        out[(row["model"], "default" if row["library_default"] else label)] = row
    return out


def overhead_table(path: str = "regularizer_overhead.json") -> str:
    """Seconds per epoch, time ratio, RMSE, SO(3) error and score of every configuration."""
    rows = []
    for row in J(path)["rows"]:
        config = row["config"]
        label = "plain fine-tuning"
        if config != "plain":
            label = " / ".join(str(config[k]) for k in ("n_samples", "batch_fraction", "every"))
            label += "*" if row["library_default"] else ""
        rows.append(
            [
                row["model"],
                label,
                f"{row['seconds_per_epoch']:.3f}",
                f"{row['ratio']:.2f}x [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]",
                f"{row['rmse_mean']:.3f} ± {row['rmse_std']:.3f}",
                f"{row['equivariance_error_mean']:.1e} ± {row['equivariance_error_std']:.0e}",
                f"{row['equivariance_score_mean']:.4f}",
            ]
        )
    header = ["model", "n_samples / batch_fraction / every", "s/epoch", "time ratio", "RMSE", "SO(3) error", "score"]
    return table(header, rows)


# Measuring equivariance (benchmarks/equivariance_eval.py), backbones, dataset loading.


def describe_plan(plan: Sequence[int], cut: int | None = None) -> str:
    """``[0, 2, 2]`` -> ``"3 forwards (batch alone, 2 x 2 copies)"`` (as benchmarks/equivariance_eval.py prints it)."""
    runs = f", each in runs of <= {cut} nodes" if cut else ""
    if len(plan) == 1:
        return f"1 forward (batch + {plan[0]} copies{runs})"
    alone = "batch alone, " if plan[0] == 0 else f"batch + {plan[0]}, "
    rest = plan[1:]
    sizes = f"{len(rest)} x {rest[0]}" if len(set(rest)) == 1 else ", ".join(map(str, rest))
    return f"{len(plan)} forwards ({alone}{sizes} copies{runs})"


def eval_rows() -> list[dict]:
    """The e3nn rows of the dedicated run (``equivariance_eval_e3nn/``), the other models' of the full run."""
    e3nn = J("equivariance_eval_e3nn/equivariance_eval.json")["rows"]
    return e3nn + [r for r in J("equivariance_eval.json")["rows"] if r["model"] != "e3nn_gnn"]


def eval_row(model: str, chunk: int, path: str | None = None) -> dict:
    """One row of the measuring benchmark (``path``: a given run instead of the table's)."""
    rows = J(path)["rows"] if path else eval_rows()
    return next(r for r in rows if r["model"] == model and r["chunk"] == chunk)


def eval_table() -> str:
    """Seconds and ratios of geoadapt, the model's own forwards and e3nn's checker."""
    rows = []
    for r in eval_rows():
        s = r["seconds"]
        rows.append(
            [
                r["model"],
                r["chunk"],
                describe_plan(r["forward_plan"], r.get("split_nodes")),
                f"{s['geoadapt']:.3f}",
                f"{s['own forwards']:.3f}",
                f"{s['e3nn.util.test']:.3f}",
                "{:.2f}x [{:.2f}-{:.2f}]".format(*r["geoadapt_over_own_forwards"]),
                "{:.2f}x [{:.2f}-{:.2f}]".format(*r["e3nn_over_geoadapt"]),
                f"{r['stacked_over_one_copy_per_forward'][0]:.2f}x",
                f"{r['mean_error']:.1e}",
            ]
        )
    header = ["model", "chunk", "copies run", "geoadapt s", "own K+1 forwards s", "e3nn.util.test s"]
    return table(header + ["geoadapt / own", "e3nn / geoadapt", "stacked / per copy", "mean error"], rows)


def backbones_table() -> str:
    """Parameters, time and measured errors of every backbone."""
    rows = [
        [
            r["model"],
            f"{r['parameters']:,}",
            f"{r['fwd_bwd_s_per_1000']:.2f}",
            f"{r['e3_error']:.1e}",
            f"{r['perm_error']:.1e}",
            r["symmetry"],
        ]
        for r in J("backbones.json")["rows"]
    ]
    header = ["model", "parameters", "fwd+bwd s / 1000 mol", "E(3) error", "perm error", "by construction"]
    return table(header, rows)


def datasets_table() -> str:
    """Conformer generation, cold and cached, per 1000 molecules."""
    rows = [
        [r["dataset"], r["molecules"], r["workers"], f"{r['cold_s_per_1000']:.1f}", f"{r['cached_s_per_1000']:.2f}"]
        for r in J("datasets.json")["rows"]
        if "molecules" in r
    ]
    return table(["dataset", "items", "workers", "cold s / 1000", "cached s / 1000"], rows)


def predict_rows() -> list[dict]:
    """The configurations of the prediction throughput benchmark (cores, with or without equivariance)."""
    return J("predict_throughput.json")["rows"]


def predict_row(cores: int, with_equivariance: bool = False) -> dict:
    """One configuration of the prediction throughput benchmark."""
    return next(r for r in predict_rows() if r["cores"] == cores and r["with_equivariance"] == with_equivariance)


def predict_table() -> str:
    """Molecules per second and peak memory of ``geoadapt predict``, medians (min-max) of interleaved repeats."""

    def cell(s: dict, spec: str) -> str:
        return f"{s['median']:{spec}} ({s['min']:{spec}}-{s['max']:{spec}})"

    rows = [
        [r["cores"], "yes" if r["with_equivariance"] else "no", f"{r['rows']:,}", r["failed"],
         cell(r["molecules_per_s"], ".1f"), cell(r["seconds"], ".0f"), f"{r['main_mb']['median']:.0f}",
         f"{r['worker_mb']['median']:.0f}" if r["cores"] > 1 else "-"]
        for r in predict_rows()
    ]  # fmt: skip
    header = ["cores", "equivariance errors", "molecules", "failed", "molecules / s", "seconds", "peak MB (main)",
              "peak MB (each worker)"]  # fmt: skip
    return table(header, rows)


def dataset_row(name: str) -> dict:
    """The row of ``name`` in the dataset-loading benchmark."""
    return next(r for r in J("datasets.json")["rows"] if r["dataset"] == name)


# Graph classification (benchmarks/graph_classification.py): one JSON per command.

GRAPH_RUNS = ("small", "proteins", "imdb", "nci1", "proteins_pe")


def graph_rows(part: str) -> list[tuple[int, dict]]:
    """``(command number, row)`` for the GIN rows (``part="gin"``) or the eigenvector rows (``"laplacian_pe"``)."""
    return [
        (i, row)
        for i, tag in enumerate(GRAPH_RUNS, 1)
        for row in J(f"graph_classification_{tag}.json")["rows"]
        if row["part"] == part
    ]


def graph_row(dataset: str, part: str = "gin", signflip: float | None = None) -> dict:
    """One row of the graph classification runs."""
    return next(
        r for _, r in graph_rows(part) if r["dataset"] == dataset and r.get("signflip_weight", signflip) == signflip
    )


def _held_out(row: dict) -> str:
    return f"{row['val_mean']:.1f} ± {row['val_std']:.1f}" if "val_mean" in row else "-"


def gin_table() -> str:
    """GIN accuracy under both protocols against Xu et al.'s published numbers."""
    rows = [
        [
            row["dataset"],
            n,
            f"{row['xu_mean']:.1f} ± {row['xu_std']:.1f}",
            _held_out(row),
            row["published"],
            f"{row['xu_mean'] - row['published']:+.1f}",
        ]
        for n, row in graph_rows("gin")
    ]
    header = ["dataset", "command", "accuracy (Xu protocol)", "accuracy (held-out)", "published (Xu)", "difference"]
    return table(header, rows)


def signflip_table() -> str:
    """GIN with Laplacian eigenvectors, with and without the SignFlip regularizer."""
    rows = [
        [
            row["dataset"],
            n,
            "SignFlip regularizer" if row["signflip_weight"] else "none",
            f"{row['xu_mean']:.1f} ± {row['xu_std']:.1f}",
            _held_out(row),
            f"{row['consistency']:.3f}",
        ]
        for n, row in graph_rows("laplacian_pe")
    ]
    header = ["dataset", "command", "regularizer", "accuracy (Xu protocol)", "accuracy (held-out)"]
    return table(header + ["sign consistency"], rows)


# SevenNet-0 (benchmarks/foundation_adaptation.py) and the molecular demo (python -m geoadapt.demo molecules).

FOUNDATION_LABELS = {"lora_o3": "lora + O3", "parity": "parity average"}


def foundation_table(dataset: str) -> str:
    """Energy and force errors, symmetry errors, trainable parameters and time of each method on one dataset."""
    rows = []
    for method, s in J("foundation_adaptation.json")["datasets"][dataset]["summary"].items():
        step = f"{s['s_per_step'][0]:.2f}" if s["s_per_step"][0] > 0 else "-"
        rows.append(
            [
                FOUNDATION_LABELS.get(method, method),
                f"{s['energy_mae'][0]:.3g} ± {s['energy_mae'][1]:.2g}",
                f"{s['force_rmse'][0]:.3g} ± {s['force_rmse'][1]:.2g}",
                f"{s['se3_error'][0]:.1e}",
                f"{s['o3_error'][0]:.1e}",
                f"{int(s['trainable'][0]):,}",
                step,
            ]
        )
    header = ["method", "energy MAE meV/atom", "force RMSE eV/Å", "SE(3) force err", "O(3) force err", "trainable"]
    return table(header + ["s/step"], rows)


def foundation(dataset: str) -> dict:
    """One dataset of the SevenNet-0 benchmark: sizes, summary and checks."""
    return J("foundation_adaptation.json")["datasets"][dataset]


MOLECULAR_DEMO = "demo-molecules/summary.json"


def demo_table() -> str:
    """The molecular demo's comparison: task metrics, SO(3) and permutation errors (its one-shot times are no
    benchmark)."""
    rows = []
    for m in J(MOLECULAR_DEMO)["methods"]:
        x = m["metrics"]
        rows.append(
            [
                m["method"],
                *(f"{x[k]:.3f}" for k in ("rmse", "moved_rmse", "mae", "r2")),
                f"{x['equivariance_error/SO3']:.2e}",
                f"{x['equivariance_error/Permutation()']:.1e}",
                f"{x['equivariance_score/SO3']:.4f}",
            ]
        )
    header = ["method", "RMSE", "RMSE moved", "MAE", "R²", "SO(3) error", "perm error", "SO(3) score"]
    return table(header, rows)


def demo(method: str) -> dict:
    """One method of the molecular demo: ``{"metrics": ..., "seconds": ...}``."""
    return next(m for m in J(MOLECULAR_DEMO)["methods"] if m["method"] == method)
