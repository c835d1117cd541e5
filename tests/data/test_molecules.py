"""SMILES -> 3D graphs: real conformers, caching, failures counted, user CSVs."""

from __future__ import annotations

import pytest
import torch

from geoadapt.data import build_molecules, from_csv, load
from geoadapt.data import molecules as molecules_module
from geoadapt.data.splits import murcko_scaffold, random_split, scaffold_split
from geoadapt.featurize import ATOM_DIM, BOND_DIM, smiles_to_data

FIRST_ROW = {6, 7, 8}


def test_conformers_are_real_geometry():
    # Bonds between C, N and O are 1.1-1.6 Å; heavier atoms (S-S 2.05 Å, C-I 2.14 Å) are excluded on purpose.
    dataset = load("rdkit_chembl2321810", limit=30, progress=False)
    lengths = []
    for graph in dataset.graphs:
        src, dst = graph.edge_index
        keep = torch.tensor(
            [int(graph.z[i]) in FIRST_ROW and int(graph.z[j]) in FIRST_ROW for i, j in zip(src.tolist(), dst.tolist())],
            dtype=torch.bool,
        )
        lengths.append((graph.pos[src[keep]] - graph.pos[dst[keep]]).norm(dim=-1))
    lengths = torch.cat(lengths)
    assert lengths.numel() > 500
    assert lengths.min() > 0.9 and lengths.max() < 2.0
    assert graph.x.shape[1] == ATOM_DIM and graph.edge_attr.shape[1] == BOND_DIM


def test_several_conformers_differ():
    graphs = smiles_to_data("CCCCCCCCO", seed=3, num_conformers=3)
    assert len(graphs) == 3
    assert (graphs[0].pos - graphs[1].pos).abs().max() > 0.1


def test_cache_is_reused_without_embedding(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path))
    smiles, targets = ["CCO", "c1ccccc1", "CC(=O)O"], [[1.0], [2.0], [3.0]]
    first = build_molecules("tiny", smiles, targets, progress=False)
    files = list((tmp_path / "molecules").glob("tiny-*.pt"))
    assert len(files) == 1 and not list((tmp_path / "molecules").glob(".*tmp"))

    def no_embedding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(molecules_module, "embed_smiles", no_embedding)
    second = build_molecules("tiny", smiles, targets, progress=False)
    assert all(torch.equal(a.pos, b.pos) for a, b in zip(first.graphs, second.graphs))
    with pytest.raises(AssertionError, match="cache"):
        build_molecules("tiny", smiles, [[1.0], [2.0], [4.0]], progress=False)  # changed targets: new key


def test_broken_smiles_are_counted_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path))
    dataset = build_molecules("broken", ["CCO", "C1CC", "not a smiles", "CCN"], [[0.0]] * 4, progress=False)
    assert len(dataset) == 2 and [i for i, _ in dataset.failures] == [1, 2]
    assert "2 failed" in dataset.summary()


def test_from_csv_user_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "mine.csv"
    path.write_text("smiles,activity,active\r\nCCO,1.5,1\r\nc1ccccc1O,2.5,0\r\nCCN,,1\r\nxx,0.1,0\r\n")
    reg = from_csv(path, "smiles", ["activity"], progress=False)
    assert len(reg) == 2 and len(reg.failures) == 1  # empty target skipped, broken SMILES counted
    cls = from_csv(path, "smiles", ["active"], task="classification", progress=False)
    assert cls.task == "classification" and cls.targets.tolist() == [[1.0], [0.0], [1.0]]
    with pytest.raises(ValueError, match=r"column 'nope': expected one of \['smiles', 'activity', 'active'\]"):
        from_csv(path, "smiles", ["nope"])
    with pytest.raises(FileNotFoundError, match="'missing.csv' not found"):
        from_csv(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="task"):
        from_csv(path, "smiles", ["activity"], task="ranking")


def test_scaffold_split_keeps_scaffolds_apart():
    smiles = ["c1ccccc1C", "c1ccccc1CC", "c1ccncc1C", "C1CCCCC1O", "CCO", "CCN", "c1ccc2ccccc2c1"]
    split = scaffold_split(smiles, (0.6, 0.2, 0.2))
    scaffolds = {k: {murcko_scaffold(smiles[i]) for i in v} for k, v in split.items()}
    assert not (scaffolds["train"] & scaffolds["test"]) and not (scaffolds["train"] & scaffolds["val"])
    assert sorted(sum((v.tolist() for v in split.values()), [])) == list(range(len(smiles)))
    parts = random_split(10, (0.8, 0.1, 0.1), seed=1)
    assert sorted(sum((v.tolist() for v in parts.values()), [])) == list(range(10))
    with pytest.raises(ValueError, match="fractions"):
        random_split(10, (0.5, 0.1, 0.1))


def test_dropped_rows_are_counted_by_reason_with_their_row_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "mine.csv"
    rows = ["CCO,1.0", "C1CC,2.0", "CCN,", "CCCl,NaN", "C[C@]12C[C@@]1(C)C2,3.0", "c1ccccc1O,4.0"]
    path.write_text("smiles,y\n" + "\n".join(rows) + "\n")
    dataset = from_csv(path, "smiles", ["y"], progress=False)
    expected = {"nan_target": [2, 3], "parse": [1], "embed": [4]}
    assert dataset.dropped == expected  # rows count data rows from 0, as pandas does
    assert sorted(int(g.mol_id) for g in dataset.graphs) == [0, 5]
    assert dataset.dropped_counts() == {"nan_target": 2, "parse": 1, "embed": 1, "first_rows": expected}
    line = dataset.dropped_line()
    assert line.startswith("mine: dropped 4 of 6 rows") and "unparsable SMILES (row 1)" in line
    assert "2 NaN or empty targets (rows 2, 3)" in line and "failed 3D embeddings (row 4)" in line
    assert dataset[[0]].dropped == expected  # a split keeps the record

    def no_embedding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(molecules_module, "embed_smiles", no_embedding)
    assert from_csv(path, "smiles", ["y"], progress=False).dropped == expected  # the cache keeps the reasons


def test_nan_targets_are_dropped_from_any_source(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path))
    dataset = build_molecules("nan", ["CCO", "CCN", "CCC"], [[float("nan")], [1.0], [2.0]], progress=False)
    assert len(dataset) == 2 and dataset.dropped["nan_target"] == [0] and torch.isfinite(dataset.targets).all()


def test_bad_csv_files_fail_in_one_clear_line(tmp_path):
    empty, header, word = tmp_path / "empty.csv", tmp_path / "header.csv", tmp_path / "word.csv"
    empty.write_text("")
    header.write_text("smiles,y\n")
    word.write_text("smiles,y\nCCO,1.0\nCCN,high\n")
    with pytest.raises(ValueError, match="got an empty file"):
        from_csv(empty)
    with pytest.raises(ValueError, match="the file has no rows"):
        from_csv(header)
    with pytest.raises(ValueError, match="column 'y' row 1 of .*word.csv: expected a number .*got 'high'"):
        from_csv(word)


def test_sample_draws_rows_across_the_file_in_file_order(monkeypatch):
    """``sample=`` reaches past a file sorted by series (``limit=`` keeps its first rows); bad sizes are refused."""
    from geoadapt.data.rdkit_sets import read_chembl2321810

    asked = []
    monkeypatch.setattr(molecules_module, "embed_smiles", lambda smiles, *a, **k: asked.append(list(smiles)) or [])
    monkeypatch.setenv("GEOADAPT_CACHE", "/nonexistent-never-written")
    everything, _ = read_chembl2321810()
    load("rdkit_chembl2321810", sample=40, progress=False, cache=False)
    load("rdkit_chembl2321810", sample=40, progress=False, cache=False)
    first, again = asked
    assert first == again and len(first) == 40  # the same rows every time
    rows = [everything.index(s) for s in first]
    assert rows == sorted(rows) and rows[-1] > len(everything) // 2
    with pytest.raises(ValueError, match=r"sample: expected 1 to 1017 rows of 'rdkit_chembl2321810', got 5000"):
        load("rdkit_chembl2321810", sample=5000, progress=False)
    with pytest.raises(ValueError, match=r"limit, sample: expected one of them, got limit=100 and sample=40"):
        load("rdkit_chembl2321810", limit=100, sample=40, progress=False)
