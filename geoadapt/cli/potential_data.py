"""The data of ``task=potential`` from files of structures: extxyz (or any format ASE reads) with the label keys of
the command, a validation file or a split, the per-element energy reference (E0s), and the source-like crystals that
replay and the forgetting measurement use.

Every file is read and checked in full (:func:`geoadapt.io.read`) before anything trains: a bad frame stops the
command with one line naming the file, the frame and the key.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from geoadapt.errors import ConfigError

STRUCTURE_SUFFIXES = (".extxyz", ".xyz")  # other formats ASE reads are recognized as existing files
E0_CHOICES = ("auto", "isolated", "refit", "keep")


def check_keys(config: dict[str, Any]) -> None:
    """One-line errors for the values of the keys of files of structures, replay and the energy reference."""
    if config.get("keys") not in (None, "calculator"):
        raise ConfigError(f"keys: expected 'calculator' or no value (then the *_key keys), got {config['keys']!r}")
    if config.get("stress") not in (None, True, False):
        raise ConfigError(f"stress: expected true, false or no value, got {config['stress']!r}")
    if "e0s" in config and config["e0s"] not in E0_CHOICES:
        raise ConfigError(f"e0s: expected one of {list(E0_CHOICES)}, got {config['e0s']!r}")
    if "val_fraction" in config and not 0 < config["val_fraction"] < 1:
        raise ConfigError(
            f"val_fraction: expected a share in (0, 1) held out for validation, got {config['val_fraction']}"
        )
    if "replay_ratio" in config and not 0 <= config["replay_ratio"] < 1:
        raise ConfigError(
            f"replay_ratio: expected a share of replay structures in [0, 1), got {config['replay_ratio']}"
        )


def is_structure_file(data: Any) -> bool:
    """Whether ``data=`` names a file of structures: ``.extxyz`` / ``.xyz``, or an existing file that is not a CSV."""
    path = Path(str(data)).expanduser()
    suffix = path.suffix.lower()
    return suffix in STRUCTURE_SUFFIXES or (path.is_file() and suffix != ".csv")


def check_structure_task(config: dict[str, Any]) -> None:
    """A file of structures needs a task that reads labelled structures (``task=potential``): one line if not."""
    from geoadapt.tasks import TASKS

    name = config.get("task")
    if is_structure_file(config["data"]) and (name is None or TASKS[name].data_kind != "structures"):
        readers = [n for n, cls in TASKS.items() if cls.data_kind == "structures"]
        expected = " or ".join(f"task={reader}" for reader in readers)
        raise ConfigError(f"task: expected {expected} for the file of structures {config['data']}, got {name}")


def structure_loaders(config: dict[str, Any], model, task) -> tuple[Any, Any]:
    """Read and check every file, set the energy reference and label the replay structures, before any training:
    the training loader (replay mixed in) and the validation loader of a task that reads labelled structures."""
    train, val, e0s = potential_graphs(config, model)
    print(set_energy_reference(config, model, task, train, e0s))
    return potential_loaders(config, train, val, replay_graphs(config, model, train))


def label_keys(config: dict[str, Any]):
    """The :class:`~geoadapt.io.Keys` of the command (``keys=calculator``: the frames' calculator results)."""
    from geoadapt.io import Keys

    if config.get("keys") is not None:
        return "calculator"
    return Keys(energy=config["energy_key"], forces=config["forces_key"], stress=config["stress_key"])


def read_structures(path: str, config: dict[str, Any], model=None):
    """The labelled graphs of ``path`` (:class:`~geoadapt.data.potentials.PotentialDataset` with ``e0s``); only the
    elements ``model`` knows (when it says which) are accepted."""
    from geoadapt.io import read

    keys = label_keys(config)
    if keys == "calculator":  # on standard error under json=true, so that standard output stays JSON
        note = f"{path}: labels read from the frames' calculator results (keys=calculator), not REF_* keys"
        print(note, file=sys.stderr if config.get("json") else sys.stdout)
    known = model if getattr(model, "elements", None) is not None else None
    return read(Path(path).expanduser(), keys=keys, stress=config.get("stress"), elements=known)


def potential_graphs(config: dict[str, Any], model) -> tuple[list, list, dict[int, float]]:
    """Training and validation graphs of ``data=`` (a file of structures, ``md17_<molecule>`` or ``mmff_<set>``)
    and the isolated-atom energies (E0s) the files give. Validation: ``val_data=`` when set, else a seeded
    ``val_fraction`` of ``data`` (whole molecules on one side for conformer sets)."""
    from geoadapt.cli.data import potential_dataset, potential_split

    data = read_structures(config["data"], config, model) if is_structure_file(config["data"]) else None
    if data is not None and config.get("limit"):
        data = data[range(min(config["limit"], len(data)))]  # the first structures of the file
    data = data if data is not None else potential_dataset(config)
    e0s = dict(data.e0s)
    if config.get("val_data"):
        val = read_structures(config["val_data"], config, model)
        e0s.update(val.e0s)
        return list(data.graphs), list(val.graphs), e0s
    train, val = potential_split(data, config["seed"], config["val_fraction"])
    return train, val, e0s


def potential_loaders(config: dict[str, Any], train: list, val: list, replay: list | None) -> tuple[Any, Any]:
    """The training loader (replay mixed in when there is some) and the validation loader."""
    from geoadapt.cli.data import POTENTIAL_EVAL_BATCH_SIZE
    from geoadapt.train.pretrain import loader_for
    from geoadapt.train.replay import ReplayLoader

    loader = loader_for(train, config["batch_size"], True)
    if replay:
        loader = ReplayLoader(loader, replay, config["replay_ratio"])
    return loader, loader_for(val, POTENTIAL_EVAL_BATCH_SIZE, False)


def set_energy_reference(config: dict[str, Any], model, task, train: list, e0s: dict[int, float]) -> str:
    """Set the per-element energy shift of ``model`` through ``task``'s set-up as ``e0s=`` says (the Trainer's
    set-up then leaves it as set); returns a line saying what was done.

    ``auto``: the isolated-atom energies of the files when they give one for every element of the training data,
    else a least-squares refit on the training data; ``isolated`` / ``refit``: that one; ``keep``: the model's own.
    A model without a per-element shift (:class:`~geoadapt.models.potential.EnergyShift`) keeps its energies.
    """
    from geoadapt.models.potential import EnergyShift
    from geoadapt.models.predictor import base_model

    given = sorted(set(config.get("task_options") or {}) & {"refit_shift", "e0s"})
    if given:
        raise ConfigError(
            f"task_options: expected the energy reference in the e0s key (auto, isolated, refit, keep), got {given}"
        )
    choice = config["e0s"]
    elements = sorted({int(z) for g in train for z in g.z})
    missing = [z for z in elements if z not in e0s]
    if choice == "isolated" and missing:
        raise ConfigError(f"e0s=isolated: expected an IsolatedAtom frame for every element, got none for {missing}")
    if choice == "keep" or not isinstance(base_model(model), EnergyShift):
        task.refit_shift = False
        if choice == "keep":
            return "energy reference: the model's own (e0s=keep)"
        return f"energy reference: {type(model).__name__} has no per-element energy shift; kept as it is"
    isolated = choice == "isolated" or (choice == "auto" and not missing)
    task.refit_shift, task.e0s = True, ({z: e0s[z] for z in elements} if isolated else {})
    task.setup(model, train)
    if isolated:
        return f"energy reference: the isolated-atom energies (E0s) of elements {elements} from the data"
    fit = task.shift_refit
    return (
        f"energy reference: refitted by least squares on the training data (elements {elements}): "
        f"energy MAE {fit.mae_before * 1000:.4g} -> {fit.mae_after * 1000:.4g} meV/atom"
    )


def replay_graphs(config: dict[str, Any], model, train: list) -> list | None:
    """With ``replay_ratio > 0``: source-like structures (``replay_data=`` or ``replay_structures`` built crystals
    without the training data's elements) labelled by ``model`` as it is now; else ``None``."""
    from geoadapt.train.replay import pseudolabel

    ratio = config["replay_ratio"]
    if ratio == 0:
        return None
    structures = source_structures(config, [int(z) for g in train for z in g.z], config["replay_structures"])
    stress = all(g.get("stress") is not None for g in train)
    replay = pseudolabel(model, structures, stress=stress)
    print(f"replay: {len(replay)} source-like structures labelled by the model, {ratio:.0%} of every training step")
    return replay


def source_structures(config: dict[str, Any], exclude: list[int], count: int, seed_offset: int = 1) -> list:
    """Unlabelled source-like structures: those of ``replay_data=`` (labels ignored), or ``count`` crystals built
    without the ``exclude`` elements (:func:`geoadapt.data.source_like.source_like_structures`)."""
    from geoadapt.data.source_like import source_like_structures

    if config.get("replay_data"):
        import ase.io

        path = Path(config["replay_data"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"replay_data: expected a file of structures, got {str(path)!r} (no such file)")
        try:
            frames = ase.io.read(path, index=":")
        except Exception as err:  # ASE raises many kinds for a file it cannot parse
            raise ConfigError(f"replay_data {path}: ASE could not read it ({type(err).__name__}: {err})") from err
        return list(frames)
    return source_like_structures(count, exclude=exclude, seed=config["seed"] + seed_offset)
