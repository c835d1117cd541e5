"""Loaders on the real offline files: counts match the staged data's README; errors name what is missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoadapt.data import card_names, files_present, load, read_card
from geoadapt.data.graphs import stratified_folds

TU_COUNTS = {
    "mutag": (188, 2),
    "ptc_mr": (344, 2),
    "proteins": (1113, 2),
    "nci1": (4110, 2),
    "enzymes": (600, 6),
    "imdb_binary": (1000, 2),
}


@pytest.mark.parametrize("name", sorted(TU_COUNTS))
def test_tu_counts_and_features(name):
    dataset = load(name)
    size, classes = TU_COUNTS[name]
    assert len(dataset) == size == read_card(name)["expected_size"]
    assert dataset.num_classes == classes
    assert dataset[0].x is not None and dataset[0].x.shape[1] > 0  # IMDB-BINARY: one-hot degrees


def test_tu_processing_stays_out_of_the_data_folder():
    from geoadapt.data.cache import data_root

    load("mutag")
    assert not (data_root() / "TUDataset" / "MUTAG" / "processed").exists()


def test_stratified_folds_partition_and_keep_class_balance():
    labels = torch.cat([d.y for d in load("mutag")]).numpy()
    folds = stratified_folds(labels, 10, seed=0)
    tests = np.concatenate([f["test"] for f in folds])
    assert sorted(tests.tolist()) == list(range(188))  # every graph is tested exactly once
    for fold in folds:
        parts = [set(fold[k].tolist()) for k in ("train", "val", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert abs(labels[fold["test"]].mean() - labels.mean()) < 0.1
    assert [f["test"].tolist() for f in stratified_folds(labels, 10, 0)] == [f["test"].tolist() for f in folds]


def test_esol_count_and_targets():
    esol = load("esol", progress=False)
    assert len(esol) == 1128 and not esol.failures
    assert esol.targets.shape == (1128, 1)
    assert esol.targets.min() < -8 and esol.targets.max() > 1  # log solubility spans about -11.6 .. 1.6


def test_splits_are_disjoint_and_cover(tmp_path):
    parts = [load("esol", split=s, progress=False) for s in ("train", "val", "test")]
    ids = [set(int(g.mol_id) for g in p.graphs) for p in parts]
    assert sum(len(i) for i in ids) == 1128 and not (ids[0] & ids[1]) and not (ids[0] & ids[2])


def test_digits_and_rotated_sets():
    digits = load("digits")
    assert digits.images.shape == (1797, 1, 8, 8) and int(digits.labels.max()) == 9
    quarter = digits.rotated(90)
    assert torch.equal(quarter.images, torch.rot90(digits.images, 1, dims=(-2, -1)))
    assert digits.rotated(30).images.shape == digits.images.shape
    assert len(load("digits", split="test")) == 359


def test_point_clouds_and_vector_targets():
    shapes = load("geometric_shapes")
    assert len(shapes) == 40 and shapes[0].pos.shape == (256, 3)
    again = load("geometric_shapes")
    assert torch.equal(shapes[3].pos, again[3].pos)  # seeded sampling
    assert len(load("qm9_subset")) == 21
    md17 = load("md17_ethanol")
    assert len(md17) == 20 and md17[0].force.shape == (9, 3)


def test_missing_files_name_the_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'MUTAG_A.txt' not found in .*TUDataset/MUTAG/raw"):
        load("mutag", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"'delaney-processed.csv' not found in .*MoleculeNet/esol/raw"):
        load("esol", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ModelNet10"):
        load("modelnet10", root=str(tmp_path))
    with pytest.raises(ValueError, match=r"dataset name: expected one of \[.*'esol'.*\], got 'nope'"):
        load("nope")


def test_every_card_has_the_required_keys():
    for name in card_names():
        card = read_card(name)
        for key in ("name", "task", "metric", "split", "spec", "source", "citation", "expected_size"):
            assert key in card, f"{name}: missing {key}"
        assert card["name"] == name


def test_cards_report_file_presence(tmp_path):
    assert files_present(read_card("mutag")) and files_present(read_card("digits"))
    assert not files_present(read_card("mutag"), root=str(tmp_path)) and not files_present(read_card("modelnet10"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,size", [("lipophilicity", 4200), ("bbbp", 2039), ("rdkit_nci5k", 4999), ("rdkit_chembl2321810", 1017)]
)
def test_large_molecule_sets(name, size):
    dataset = load(name, progress=False)
    kept = len({int(g.mol_id) for g in dataset.graphs})
    assert kept + len(dataset.failures) >= size - 1 and kept >= size - 15


def test_molecules_as_point_clouds():
    from geoadapt.data.pointclouds import molecule_point_cloud

    graph = load("rdkit_chembl2321810", limit=3, progress=False)[0]
    cloud = molecule_point_cloud(graph)
    assert cloud.edge_index is None and torch.equal(cloud.pos, graph.pos)
    assert torch.equal(cloud.x.argmax(1), graph.x[:, : cloud.x.shape[1]].argmax(1))  # element one-hot kept
    assert cloud.x.sum(1).eq(1).all()


def test_laplacian_pe_pads_small_graphs():
    from torch_geometric.data import Data

    from geoadapt.data.graphs import add_laplacian_pe

    tiny = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), num_nodes=3)
    assert add_laplacian_pe(tiny, 4).eigvecs.shape == (3, 4)
    graph = load("mutag")[0]
    pe = add_laplacian_pe(graph, 4).eigvecs
    assert pe.shape == (graph.num_nodes, 4)
    assert torch.allclose(pe.T @ pe, torch.eye(4), atol=1e-4)  # orthonormal eigenvectors


def test_laplacian_pe_signs_do_not_follow_the_global_rng():
    """PyG flips each eigenvector's sign with the global RNG (seeded differently in every process): with a seed
    the signs are the same whatever that RNG's state, and without one they follow it."""
    from geoadapt.data.graphs import add_laplacian_pe

    graph = load("mutag")[0]
    torch.manual_seed(1)
    first = add_laplacian_pe(graph, 4).eigvecs
    torch.manual_seed(2)
    assert torch.equal(add_laplacian_pe(graph, 4).eigvecs, first)
    after = torch.rand(3)
    torch.manual_seed(2)
    assert torch.equal(after, torch.rand(3))  # the global RNG was left as it was
    signs = set()
    for state in range(8):
        torch.manual_seed(state)
        pe = add_laplacian_pe(graph, 4, seed=None).eigvecs
        signs.add(tuple(torch.sign(pe[pe.abs().argmax(0), range(4)]).tolist()))
    assert len(signs) > 1  # seed=None: PyG's random signs
