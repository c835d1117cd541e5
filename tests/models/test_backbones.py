"""Every backbone: runs on default featurization, holds its declared symmetry, round-trips checkpoints."""

from __future__ import annotations

import pytest
import torch

from geoadapt.checkpoints import load, save
from geoadapt.dtypes import default_dtype
from geoadapt.groups import E3, Permutation
from geoadapt.metrics import equivariance_error
from geoadapt.models import Standardize, available, build

GRAPH_MODELS = ["gin", "gcn", "schnet", "egnn", "e3nn_gnn", "naive_gnn", "pointnet", "dgcnn"]
E3_EXACT = {"gin", "gcn", "schnet", "egnn", "e3nn_gnn"}  # invariant/equivariant by construction
NOT_ROTATION_INVARIANT = {"naive_gnn", "pointnet", "dgcnn"}


def test_registry_names():
    assert set(GRAPH_MODELS + ["cnn"]) <= set(available())
    with pytest.raises(ValueError, match=r"model name: expected one of \[.*'egnn'.*\], got 'resnet'"):
        build("resnet")
    with pytest.raises(ValueError, match="config: expected keys among"):
        build("gin", hiden=3)


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_declared_symmetry_float64(name, molecules64):
    with default_dtype(torch.float64):
        model = build(name)
    model.eval()
    assert hasattr(model, "spec") and model.spec.output.dim == model(molecules64).shape[-1]
    assert equivariance_error(model, molecules64, Permutation(), model.spec).max() < 1e-10
    rotation = equivariance_error(model, molecules64, E3(), model.spec)
    if name in E3_EXACT:
        assert rotation.max() < 1e-10
    else:
        assert rotation.mean() > 1e-2


@pytest.mark.parametrize("config", [{"output": "1o"}, {"output": "2x1o", "output_level": "node"}])
def test_egnn_and_e3nn_vector_outputs(config, molecules64):
    for name in ("egnn", "e3nn_gnn"):
        with default_dtype(torch.float64):
            model = build(name, **config)
        out = model(molecules64)
        rows = molecules64.num_nodes if config.get("output_level") == "node" else 5
        assert out.shape == (rows, model.spec.output.dim)
        assert equivariance_error(model, molecules64, E3(), model.spec).max() < 1e-10


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_batches_of_different_sizes_match_single_graphs(name, molecules):
    model = build(name)
    model.eval()
    graphs = molecules.to_data_list()
    from torch_geometric.data import Batch

    together = model(Batch.from_data_list(graphs))
    alone = torch.cat([model(Batch.from_data_list([g])) for g in graphs])
    assert torch.allclose(together, alone, atol=1e-4)


def test_cnn_on_digits():
    from geoadapt.data import load as load_data

    model = build("cnn")
    images = load_data("digits").images[:7]
    assert model(images).shape == (7, 10) and str(model.spec.output) == "10x0e"


@pytest.mark.parametrize("name", GRAPH_MODELS + ["cnn"])
def test_checkpoint_round_trip(name, molecules, tmp_path):
    model = build(name)
    model.eval()
    inputs = torch.randn(3, 1, 8, 8) if name == "cnn" else molecules
    path = save(
        model,
        tmp_path / f"{name}.pt",
        target_scaler=Standardize([1.0], [2.0]),
        dataset="unit",
        metrics={"rmse": 0.5},
    )
    loaded = load(path, arch=name)
    loaded.eval()
    assert torch.equal(loaded.network(inputs), model(inputs))
    assert torch.equal(loaded(inputs), model(inputs) * torch.tensor([2.0]) + torch.tensor([1.0]))  # target units
    assert loaded.spec == model.spec and loaded.scaler == Standardize([1.0], [2.0])
    assert loaded.checkpoint["dataset"] == "unit" and loaded.checkpoint["library_version"]
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.pt"]  # nothing half-written beside it


def test_checkpoint_errors(tmp_path):
    path = save(build("gin"), tmp_path / "gin.pt")
    with pytest.raises(ValueError, match="expected architecture 'egnn', got 'gin'"):
        load(path, arch="egnn")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"bad.pt: expected a file geoadapt wrote \(a torch zip archive\)"):
        load(tmp_path / "bad.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected format 'geoadapt-checkpoint'"):
        load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="'missing.pt' not found"):
        load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="made by geoadapt.models.build"):
        save(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_tiny_pretrain_lowers_training_loss(tmp_path):
    import geoadapt

    model, _ = geoadapt.pretrain(
        "naive_gnn", "rdkit_nci5k", tmp_path / "m.pt", epochs=4, limit=96, lr=3e-3, augment="so3", progress=False
    )
    history = load(tmp_path / "m.pt").checkpoint
    assert history["dataset"] == "rdkit_nci5k" and history["extra"]["augment"] == "SO3"
    from geoadapt.data import load as load_data
    from geoadapt.train import Trainer
    from geoadapt.train.pretrain import loader_for

    fresh = build("naive_gnn")
    trainer = Trainer(fresh, max_epochs=5, lr=3e-3, progress=False)
    losses = [
        row["train_loss"]
        for row in trainer.fit(loader_for(load_data("rdkit_nci5k", limit=96, progress=False), 32, True))
    ]
    assert losses[-1] < losses[0]
