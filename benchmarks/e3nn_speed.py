"""The e3nn network: channel-wise ("uvu") tensor products against the fully connected ones, on ESOL.

Speed: forward+backward seconds per 1000 ESOL molecules (heavy atoms, rdkit ETKDG + MMFF conformers, batches
of 100) for ``e3nn_gnn`` with ``tensor_product="fully_connected"`` (a weight per edge for every pair of input
and output channels of every path; 16x0e+8x1o+4x2e channels, the earlier network) and with the default
``"channelwise"`` (32x0e+16x1o+8x2e channels, each model's default ``hidden``). The two take turns batch by batch
(their order alternating), so drifts in machine speed hit both; each repeat is one pass over the molecules. The
table gives medians over repeats with their min-max, and the speed-up as the median [min-max] of the per-repeat
ratios.

Accuracy: both trained the same way on ESOL's card split (seed 0, ``--epochs`` epochs, AdamW at ``--lr`` with a
cosine schedule, batches of 32, standardized targets, the best validation epoch kept); test RMSE in log mol/L.

Per atom: microseconds per atom on the same ESOL molecules with hydrogens (rdkit ``AddHs(addCoords=True)`` on
the stored conformer): both ``e3nn_gnn`` forward+backward, ``e3nn_gnn`` energy+forces and SevenNet-0
energy+forces (a potential's use: ``-dE/dpos`` by autograd, no parameter gradients), interleaved as above.

Run: ``OMP_NUM_THREADS=1 python benchmarks/e3nn_speed.py [--repeats 5 --epochs 10]``; writes
results/e3nn_speed.json and results/e3nn_speed.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

from geoadapt.data import load  # noqa: E402
from geoadapt.featurize import mol_to_graph  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.models.potential import autograd_potential  # noqa: E402
from geoadapt.report import table  # noqa: E402

KINDS = {"fully connected (before)": "fully_connected", "channel-wise (default)": "channelwise"}


def make_model(tensor_product: str, seed: int = 0) -> nn.Module:
    """``e3nn_gnn`` (default hyperparameters) with the given tensor product, seeded."""
    torch.manual_seed(seed)
    return build("e3nn_gnn", tensor_product=tensor_product)


def fwd_bwd(model: nn.Module, batch: Batch) -> None:
    """A training step's work without the optimizer: forward, a scalar loss, backward."""
    model.zero_grad(set_to_none=True)
    model(batch).pow(2).sum().backward()


def energy_and_forces(model: nn.Module, batch: Batch) -> None:
    """A potential's use: energies and forces ``-dE/dpos``, no parameter gradients, no graph kept."""
    with torch.no_grad():  # autograd_potential switches gradients on for pos only
        autograd_potential(model, batch)


def interleaved(runs: dict[str, Callable[[Batch], None]], batches: list[Batch], repeats: int) -> dict[str, list[float]]:
    """Seconds of one pass over ``batches`` per run and repeat; the runs take turns batch by batch.

    The order of the runs is reversed on every other batch, so none is always first after a switch. One
    unmeasured pass over the first batch warms every run up first.
    """
    names = list(runs)
    for name in names:
        runs[name](batches[0])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        total = dict.fromkeys(names, 0.0)
        for b, batch in enumerate(batches):
            for name in names if b % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                runs[name](batch)
                total[name] += time.perf_counter() - start
        for name in names:
            seconds[name].append(total[name])
    return seconds


def spread(values: list[float]) -> dict[str, float]:
    """Median and min-max of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float], digits: int = 3, suffix: str = "") -> str:
    """``median [min-max]``."""
    return f"{s['median']:.{digits}f}{suffix} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def batched(graphs: list[Data], size: int) -> list[Batch]:
    return [Batch.from_data_list(graphs[i : i + size]) for i in range(0, len(graphs), size)]


def with_hydrogens(graphs: list[Data]) -> tuple[list[Data], list[str]]:
    """The molecules with hydrogens placed by rdkit (``AddHs(addCoords=True)``) around the stored heavy atoms.

    Returns the graphs (``x``, ``z``, ``pos``, bonds) and, for each molecule left out, why.
    """
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    out, skipped = [], []
    for graph in graphs:
        mol = Chem.MolFromSmiles(graph.smiles)
        if mol is None or [a.GetAtomicNum() for a in mol.GetAtoms()] != graph.z.tolist():
            skipped.append(f"{graph.smiles}: its atoms differ from the stored graph's, left out")
            continue
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for i, (x, y, z) in enumerate(graph.pos.tolist()):
            conformer.SetAtomPosition(i, Point3D(x, y, z))
        mol.AddConformer(conformer, assignId=True)
        molh = Chem.AddHs(mol, addCoords=True)
        data = mol_to_graph(molh)
        data.pos = torch.tensor(molh.GetConformer().GetPositions(), dtype=torch.float32)
        out.append(data)
    return out, skipped


def speed(graphs: list[Data], batch_size: int, repeats: int) -> list[dict]:
    """Forward+backward seconds per 1000 molecules of both tensor products, and the speed-up."""
    models = {name: make_model(kind) for name, kind in KINDS.items()}
    runs = {name: (lambda b, m=model: fwd_bwd(m, b)) for name, model in models.items()}
    seconds = interleaved(runs, batched(graphs, batch_size), repeats)
    atoms = sum(g.num_nodes for g in graphs)
    reference = seconds[next(iter(KINDS))]
    return [
        {
            "model": name,
            "tensor_product": KINDS[name],
            "parameters": sum(p.numel() for p in model.parameters()),
            "per_edge_weights": [layer.tp.weight_numel for layer in model.layers],
            "fwd_bwd_s_per_1000": spread([1000 * v / len(graphs) for v in seconds[name]]),
            "fwd_bwd_us_per_atom": spread([1e6 * v / atoms for v in seconds[name]]),
            "speedup": spread([r / v for r, v in zip(reference, seconds[name])]),
        }
        for name, model in models.items()
    ]


def accuracy(epochs: int, lr: float, limit: int | None, progress: bool) -> dict[str, dict]:
    """Test RMSE of both tensor products after the same training on ESOL's card split (seed 0)."""
    from geoadapt.train import Trainer

    splits = {s: load("esol", split=s, progress=progress).graphs for s in ("train", "val", "test")}
    if limit is not None:
        splits = {s: graphs[:limit] for s, graphs in splits.items()}
    out = {}
    for name, kind in KINDS.items():
        loaders = {
            s: DataLoader(g, batch_size=32, shuffle=s == "train", generator=torch.Generator().manual_seed(0))
            for s, g in splits.items()
        }
        trainer = Trainer(
            make_model(kind),
            "regression",
            groups=[],
            max_epochs=epochs,
            lr=lr,
            seed=0,
            scheduler="cosine",
            early_stopping="rmse",
            patience=epochs,
            progress=False,
        )
        start = time.perf_counter()
        trainer.fit(loaders["train"], loaders["val"])
        out[name] = {
            "test_rmse": trainer.evaluate(loaders["test"])["rmse"],
            "train_s": time.perf_counter() - start,
            "molecules": {s: len(g) for s, g in splits.items()},
        }
        if progress:
            print(f"trained {name}: test RMSE {out[name]['test_rmse']:.3f}", flush=True)
    return out


def per_atom(graphs: list[Data], batch_size: int, repeats: int, sevennet: bool) -> tuple[list[dict], list[str]]:
    """Microseconds per atom on the same molecules with hydrogens, SevenNet-0 beside ``e3nn_gnn``."""
    molecules, notes = with_hydrogens(graphs)
    fully_connected, channelwise = make_model("fully_connected"), make_model("channelwise")
    runs: dict[str, Callable[[Batch], None]] = {
        "e3nn_gnn fully connected, fwd+bwd": lambda b: fwd_bwd(fully_connected, b),
        "e3nn_gnn channel-wise, fwd+bwd": lambda b: fwd_bwd(channelwise, b),
        "e3nn_gnn channel-wise, energy+forces": lambda b: energy_and_forces(channelwise, b),
    }
    if sevennet:
        model = build("sevennet_0").eval()
        known = set(model.elements)
        kept = [g for g in molecules if set(g.z.tolist()) <= known]
        if len(kept) < len(molecules):
            notes.append(f"{len(molecules) - len(kept)} molecules with elements SevenNet-0 does not know left out")
        molecules = kept
        runs["SevenNet-0, energy+forces"] = lambda b: energy_and_forces(model, b)
    else:
        notes.append("SevenNet-0 not timed (--no-sevennet, the default with --quick)")
    seconds = interleaved(runs, batched(molecules, batch_size), repeats)
    atoms = sum(g.num_nodes for g in molecules)
    rows = [
        {
            "model": name,
            "molecules": len(molecules),
            "atoms": atoms,
            "us_per_atom": spread([1e6 * v / atoms for v in s]),
        }
        for name, s in seconds.items()
    ]
    return rows, notes


def report(payload: dict) -> str:
    """The markdown tables of a run."""
    settings = payload["settings"]
    speed_rows, acc = payload["rows"], payload["accuracy"]
    lines = [
        f"e3nn_gnn on {settings['molecules']} ESOL molecules ({speed_rows[0]['atoms']} heavy atoms, batches of "
        f"{settings['batch_size']}), float32, {payload['machine']['threads']} torch threads; median [min-max] of "
        f"{settings['repeats']} interleaved repeats. Test RMSE (log mol/L) after {settings['epochs']} epochs, "
        f"lr {settings['lr']}, seed 0.",
        "",
        table(
            [
                "tensor product",
                "parameters",
                "per-edge weights",
                "fwd+bwd s / 1000 mol",
                "µs / atom",
                "speed-up",
                "test RMSE",
                "train s",
            ],
            [
                [
                    r["model"],
                    f"{r['parameters']:,}",
                    "+".join(map(str, r["per_edge_weights"])),
                    fmt(r["fwd_bwd_s_per_1000"]),
                    fmt(r["fwd_bwd_us_per_atom"], 0),
                    fmt(r["speedup"], 2, "x"),
                    f"{acc[r['model']]['test_rmse']:.3f}",
                    f"{acc[r['model']]['train_s']:.0f}",
                ]
                for r in speed_rows
            ],
        ),
        "",
        f"Per atom beside SevenNet-0: the first {settings['per_atom_molecules']} of these molecules with hydrogens; "
        "median [min-max] of the same repeats.",
        "",
        table(
            ["model, work", "molecules", "atoms", "µs / atom"],
            [[r["model"], r["molecules"], r["atoms"], fmt(r["us_per_atom"], 1)] for r in payload["per_atom"]],
        ),
    ]
    lines += [f"\nnote: {note}" for note in payload["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=1000, help="ESOL molecules timed")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved passes over the molecules")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of each network on ESOL")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--per-atom-molecules", type=int, default=200)
    parser.add_argument(
        "--sevennet",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time SevenNet-0 too (default: yes, except with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a few molecules, one repeat, one epoch (a smoke run)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    limit = None
    if args.quick:
        args.molecules, args.batch_size, args.repeats, args.epochs, args.per_atom_molecules = 20, 10, 1, 1, 10
        limit = 30
    sevennet = (not args.quick) if args.sevennet is None else args.sevennet
    graphs = load("esol", progress=not args.quick).graphs[: args.molecules]
    rows = speed(graphs, args.batch_size, args.repeats)
    atoms = sum(g.num_nodes for g in graphs)
    for row in rows:
        row["atoms"] = atoms
    acc = accuracy(args.epochs, args.lr, limit, progress=not args.quick)
    for row in rows:
        row["test_rmse"] = acc[row["model"]]["test_rmse"]
    atom_rows, notes = per_atom(graphs[: args.per_atom_molecules], args.batch_size, args.repeats, sevennet)
    settings = {
        "molecules": len(graphs),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "epochs": args.epochs,
        "lr": args.lr,
        "seed": 0,
        "per_atom_molecules": args.per_atom_molecules,
        "quick": args.quick,
    }
    payload = {
        "benchmark": "e3nn_speed",
        "settings": settings,
        "rows": rows,
        "accuracy": acc,
        "per_atom": atom_rows,
        "notes": notes,
    }
    out = output_dir(args)
    path = save_json("e3nn_speed", payload, out)
    payload["machine"] = __import__("json").loads(path.read_text())["machine"]
    text = report(payload)
    print(text)
    markdown = out / "e3nn_speed.md"
    partial = markdown.with_suffix(".md.partial")
    partial.write_text(text)
    partial.replace(markdown)  # never a half-written table
    print(f"saved {path} and {markdown}")
    return payload


if __name__ == "__main__":
    main()
