"""Every command's keys, their defaults and what they mean: the one table that the parser, ``--help`` and
``docs/cli.md`` read. Plain values only: importing this module does not load torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from geoadapt import defaults


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a key without a default: the command refuses to run without it


@dataclass(frozen=True)
class Key:
    """One configuration key of a command: its name, its default (which also fixes its type) and its meaning."""

    name: str
    default: Any
    help: str


def _run_keys() -> list[Key]:
    """Keys of every command that trains in a run folder (``pretrain`` and ``adapt``)."""
    return [
        Key("overwrite", False, "replace an existing run folder (only one geoadapt made)"),
        Key("resume", False, "continue the interrupted run kept in `<out>.partial` (same settings)"),
        Key("progress", True, "a progress bar on a terminal, one line per epoch in a log (`2>run.log`); `false`: none"),
        Key("device", "auto", "`auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`"),
        Key("precision", "32", "`32`, `bf16` or `fp16` (CUDA only): autocast for the training forward"),
    ]


def _csv_keys() -> list[Key]:
    return [
        Key("smiles_column", None, "with `data=<file.csv>`: the column of SMILES (default `smiles`)"),
        Key("target_columns", None, "with `data=<file.csv>`: the target column(s), e.g. `[logS]`"),
    ]


def _label_keys() -> list[Key]:
    """Where the labels of a file of structures are (``data=<file.extxyz>``)."""
    return [
        Key("energy_key", "REF_energy", "files of structures: the `atoms.info` key of the energies (eV)"),
        Key("forces_key", "REF_forces", "files of structures: the `atoms.arrays` key of the forces (eV/Å)"),
        Key("stress_key", "REF_stress", "files of structures: the `atoms.info` key of the stresses (eV/Å³, Voigt-6)"),
        Key(
            "keys",
            None,
            "`calculator`: read the labels from the frames' calculator results instead (where ASE puts plain "
            "`energy`/`forces`/`stress` columns; often a model's predictions, not reference labels)",
        ),
        Key(
            "stress",
            None,
            "files of structures: read stresses (`true`), leave them out (`false`); unset: when all have one",
        ),
    ]


def _potential_adapt_keys() -> list[Key]:
    """The keys of ``adapt task=potential``: validation, energy reference, replay (the loss weights are
    ``task_options``)."""
    return [
        Key("val_data", None, "`task=potential`: a file of structures to validate on (else `val_fraction` of `data`)"),
        Key("val_fraction", 0.2, "`task=potential`: share of `data` held out for validation when `val_data` is unset"),
        *_label_keys(),
        Key(
            "e0s",
            "auto",
            "`task=potential`: the per-element energy reference: `isolated` (IsolatedAtom frames), `refit` (least "
            "squares on the training data), `keep`; `auto`: `isolated` when the files give every element's, "
            "else `refit`",
        ),
        Key("replay_ratio", 0.0, "`task=potential`: share of replay structures in every training step (0: no replay)"),
        Key(
            "replay_structures",
            64,
            "replay: source-like crystals built without the data's elements, labelled by the model before adapting",
        ),
        Key("replay_data", None, "replay: a file of your own source-like structures instead (labels ignored)"),
    ]


DATA_HELP = "a dataset card name (see `geoadapt datasets`) or a CSV file of molecules"
CHECKPOINT_HELP = "a checkpoint file (`run/model.pt`); give this or `model`"
LIMIT_HELP = "molecule sets only: use the first N molecules"
TRUST_HELP = "import the model class a checkpoint of a wrapped model names (only for a file you trust)"
PRETRAIN_KEYS = [
    Key("model", REQUIRED, "the architecture to build, e.g. `naive_gnn`, `gin`, `e3nn_gnn`"),
    Key("data", REQUIRED, DATA_HELP),
    Key("out", REQUIRED, "the run folder to write (`config.yaml`, `metrics.csv`, plots, `model.pt`, ...)"),
    Key(
        "model_config", {}, "options of the architecture, e.g. `{hidden: 64}`; input sizes left out come from the data"
    ),
    Key("limit", None, LIMIT_HELP),
    Key("epochs", defaults.PRETRAIN_EPOCHS, "training epochs"),
    Key("lr", defaults.LEARNING_RATE, "learning rate (AdamW)"),
    Key("batch_size", defaults.BATCH_SIZE, f"training batch size (validation: {defaults.EVAL_BATCH_SIZE})"),
    Key("augment", None, "a group to augment with, e.g. `so3`: one random element per sample per step"),
    Key("seed", defaults.SEED, "seed of the initial weights, the data order and every random choice"),
    *_csv_keys(),
    Key("task", None, "with `data=<file.csv>`: `regression` or `classification`"),
    *_run_keys(),
]
ADAPT_KEYS = [
    Key("checkpoint", None, CHECKPOINT_HELP),
    Key("model", None, "a registered model by name, e.g. `sevennet_0` (pretrained) or an architecture (seeded init)"),
    Key(
        "data",
        REQUIRED,
        DATA_HELP + "; with `task=potential`: a file of structures (`.extxyz`, any format ASE reads), "
        "`md17_<molecule>` or `mmff_<set>`",
    ),
    Key("out", REQUIRED, "the run folder to write"),
    Key("limit", None, LIMIT_HELP + " (`mmff_<set>`: 40 unless set); files of structures: the first N"),
    Key(
        "strategy", "finetune", "the adaptation strategy: `finetune`, `linear_probe`, `freeze`, `lora`, `augment`, ..."
    ),
    Key("strategy_options", {}, "any option of the strategy, e.g. `{rank: 8, alpha: 2.0}`"),
    Key("head_policy", "reuse", "`reuse` the pretrained output head or start a `new` one (a strategy option)"),
    Key("freeze", None, "with `strategy=freeze`: parameter name patterns, e.g. `[convs.0.*]`"),
    Key("rank", None, "with `strategy=lora`: the adapters' rank"),
    Key("n_samples", None, "with `strategy=group_average` over a continuous group: samples per input"),
    Key(
        "regularizers", [], "equivariance regularizers: groups or entries, e.g. `[so3]`, `[{group: so3, weight: 0.1}]`"
    ),
    Key("mixed", False, "one mixed regularizer over the entries, with self-tuned weights"),
    Key("constrained", None, "each entry as a constraint E[R] <= epsilon, e.g. `{epsilon: 0.001}` (`{}`: defaults)"),
    Key(
        "groups", ["so3", "perm"], "groups to measure equivariance under each epoch (the first one goes to strategies)"
    ),
    Key("epochs", 10, "training epochs"),
    Key("lr", defaults.LEARNING_RATE, "learning rate (AdamW)"),
    Key("batch_size", defaults.BATCH_SIZE, "training batch size"),
    Key("seed", defaults.SEED, "seed of the data order, of a built model's init and every random choice"),
    Key("early_stopping", None, "a validation metric to stop on, e.g. `rmse` or `accuracy` (best weights kept)"),
    Key("patience", 10, "epochs without improvement before early stopping"),
    *_csv_keys(),
    Key(
        "task",
        None,
        "a registered task (`geoadapt.tasks`): with `data=<file.csv>` `regression` or `classification`; `potential` "
        "(energies, forces, stresses)",
    ),
    Key(
        "task_options",
        {},
        "options of the task, e.g. `{force_weight: 10, stress_weight: 1}` for `task=potential` "
        "(`energy_weight`, `force_weight`, `stress_weight`, `refit_shift`) or `{keep_normalization: true}`",
    ),
    *_potential_adapt_keys(),
    Key("trust_code", False, TRUST_HELP),
    *_run_keys(),
]
EVALUATE_KEYS = [
    Key("checkpoint", None, CHECKPOINT_HELP + " (also `--checkpoint`)"),
    Key("model", None, "a registered pretrained model by name, e.g. `sevennet_0` (also `--model`)"),
    Key("data", REQUIRED, DATA_HELP + ", or a file of structures (`.extxyz`: all of it is measured) (also `--data`)"),
    Key("groups", "so3,perm", "groups to measure, comma separated or a list (also `--groups`)"),
    Key("split", "test", "the split to measure on: `train`, `val` or `test`"),
    Key("limit", None, LIMIT_HELP + "; files of structures: the first N"),
    Key("samples", 8, "group samples per input"),
    *_csv_keys(),
    Key(
        "task",
        None,
        "with `data=<file.csv>`: `regression` or `classification` (default: the checkpoint's task; files of "
        "structures: `potential`)",
    ),
    *_label_keys(),
    Key(
        "source",
        None,
        "files of structures: the source model (`sevennet_0`, or a checkpoint) to measure forgetting against, on "
        "crystals without the data's elements that it labels",
    ),
    Key("forgetting_structures", 32, "with `source`: how many source-like crystals to build and label"),
    Key("json", False, "print the card as JSON (also `--json`)"),
    Key("device", "auto", "`auto`, `cpu`, `cuda` or `cuda:N`"),
    Key("trust_code", False, TRUST_HELP),
]
PREDICT_KEYS = [
    Key("checkpoint", None, CHECKPOINT_HELP),
    Key("model", None, "a registered pretrained model by name, e.g. `sevennet_0` (energies of structures)"),
    Key("data", REQUIRED, "a CSV file of SMILES, a structure file (extxyz: a potential's energies) or a dataset card"),
    Key("out", REQUIRED, "the CSV file of predictions to write (rows that failed: `<out stem>.failed.csv` beside it)"),
    Key("task", None, "`regression`, `classification` or `potential` (default: the checkpoint's; extxyz: `potential`)"),
    Key("smiles_column", None, "with `data=<file.csv>`: the column of SMILES (default `smiles`)"),
    Key("target_columns", None, "with `data=<file.csv>`: target column(s) to copy beside the predictions (optional)"),
    Key("id_column", None, "with `data=<file.csv>`: a column to copy beside each prediction as `id`"),
    Key("split", None, "with a dataset card: only its `train`, `val` or `test` split (default: every row)"),
    Key("limit", None, "the first N rows only"),
    Key("with_equivariance", False, "each prediction's own equivariance error under `group` (`samples` copies)"),
    Key("symmetrize", False, "each prediction's symmetrized value (rotations: frame or parity average, exact)"),
    Key("group", None, "the group of the errors, e.g. `so3` (default: the model's adaptation group; 3D inputs: SO(3))"),
    Key("samples", 8, "transformed copies per input"),
    Key("seed", defaults.SEED, "seed of the group elements drawn"),
    Key("forces", None, "with a potential: a CSV file to write the forces to (row, atom, fx, fy, fz in eV/Å)"),
    Key("batch_size", defaults.EVAL_BATCH_SIZE, "inputs per forward pass"),
    Key("chunk_size", 1000, "rows read, featurized and written at a time (what bounds the memory)"),
    Key("workers", None, "processes that featurize SMILES (default: every core)"),
    Key("resume", False, "continue an interrupted run after its last written row (same keys)"),
    Key("overwrite", False, "replace existing output files (only files `geoadapt predict` wrote)"),
    Key("progress", True, "progress on standard error: a bar on a terminal, else one line per chunk"),
    Key("device", "auto", "`auto`, `cpu`, `cuda` or `cuda:N`"),
    Key("trust_code", False, TRUST_HELP),
]
KEYS: dict[str, list[Key]] = {
    "pretrain": PRETRAIN_KEYS,
    "adapt": ADAPT_KEYS,
    "evaluate": EVALUATE_KEYS,
    "predict": PREDICT_KEYS,
    "report": [Key("runs", REQUIRED, "run folders, as words after `report` or `runs=a,b`")],
    "bench": [
        Key("name", REQUIRED, "the benchmark: a script in `benchmarks/`, as the first word after `bench`"),
        Key("quick", False, "a tiny run (for checks)"),
        Key(
            "out",
            None,
            "folder for the JSON and markdown results (default `results/`, `results/quick/` with `quick=true`)",
        ),
    ],
    "datasets": [],
    "convert-checkpoint": [
        Key("source", REQUIRED, "a checkpoint of an earlier format that pickled Python objects"),
        Key("out", REQUIRED, "where to write the converted checkpoint (plain data; loads without running code)"),
        Key("trust_code", False, "must be `true`: converting unpickles `source`, running any code it holds"),
    ],
}
DEFAULTS: dict[str, dict[str, Any]] = {cmd: {k.name: k.default for k in keys} for cmd, keys in KEYS.items()}
HELP = {
    "pretrain": "train a backbone on a source dataset and write a run folder with model.pt",
    "adapt": "adapt a checkpoint (or a registered pretrained model, model=sevennet_0) to a target dataset with a "
    "strategy and equivariance regularizers; task=potential fits energies and forces",
    "evaluate": "print an equivariance report card (per group and per layer; forces too for energy models) of a "
    "checkpoint or a registered pretrained model on a dataset",
    "predict": "predict new inputs (a CSV of SMILES, a dataset card, an extxyz file) in target units, streamed into "
    "a CSV file, each prediction with its own equivariance error on request",
    "report": "compare run folders in one markdown table",
    "bench": "run a benchmark script from benchmarks/ (e.g. `bench equivariance_eval quick=true`)",
    "datasets": "list the dataset cards and whether their files are present",
    "convert-checkpoint": "rewrite a checkpoint of an earlier format that pickled Python objects as plain data; "
    "this unpickles (runs) the file: only for a file you trust, with trust_code=true",
}
WHOLE_NUMBERS = (  # each >= 1 when set
    "epochs",
    "batch_size",
    "limit",
    "samples",
    "patience",
    "chunk_size",
    "workers",
    "replay_structures",
    "forgetting_structures",
)
CSV_KEYS = ("smiles_column", "target_columns", "task")  # only with data=<file.csv>


def keys_line(command: str) -> str:
    """The keys with their defaults on one line, as ``--help`` shows them."""
    shown = [f"{k}{' (required)' if v is REQUIRED else f'={v!r}'}" for k, v in DEFAULTS[command].items()]
    return ", ".join(shown) or "none"


def _default_cell(value: Any) -> str:
    if value is REQUIRED:
        return "required"
    if value is None:
        return "-"
    return f"`{value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).splitlines()[0]}`"


def keys_markdown(command: str) -> str:
    """The command's keys as a markdown table (key, default, meaning): the table ``docs/cli.md`` holds."""
    rows = [f"| `{k.name}` | {_default_cell(k.default)} | {k.help} |" for k in KEYS[command]]
    return "\n".join(["| key | default | meaning |", "|---|---|---|", *rows]) if rows else "No keys."
