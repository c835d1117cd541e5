"""Devices and precision: explicit devices, clear errors instead of fall backs, mixed precision, CUDA runs.

The CUDA tests run where torch sees a GPU and are skipped elsewhere.
"""

from __future__ import annotations

import pytest
import torch
from torch_geometric.loader import DataLoader

from geoadapt.checkpoints import load as load_checkpoint
from geoadapt.checkpoints import save
from geoadapt.data import load
from geoadapt.devices import resolve_device, resolve_precision, to_device
from geoadapt.dtypes import default_dtype
from geoadapt.groups import SO3
from geoadapt.metrics import measure_equivariance
from geoadapt.models import build
from geoadapt.regularizers import EquivarianceRegularizer, stacked_forward
from geoadapt.structure import to_dtype
from geoadapt.train import Trainer, distributed

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
MESSAGE = "device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got"


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without a GPU, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture(scope="module")
def molecules():
    """48 molecules of rdkit's ChEMBL2321810 activity set (real conformers)."""
    return load("rdkit_chembl2321810", limit=48, progress=False).graphs


# --- names and errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:1", "CUDA", "", "cuda:-1", 0, 1.5])
def test_bad_device_names_are_rejected_naming_the_field(bad):
    with pytest.raises(ValueError, match=MESSAGE):
        resolve_device(bad)
    with pytest.raises(ValueError, match=MESSAGE):
        Trainer(build("naive_gnn"), device=bad)


def test_auto_is_cuda_when_there_is_one_else_the_cpu(no_cuda):
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_without_a_gpu_is_an_error_never_a_fall_back(no_cuda, tmp_path):
    for name in ("cuda", "cuda:0", torch.device("cuda", 1)):
        with pytest.raises(ValueError, match=r"device: expected a CUDA device .*is_available\(\) is False"):
            resolve_device(name)
        with pytest.raises(ValueError, match="device: expected a CUDA device"):
            Trainer(build("naive_gnn"), device=name)
    path = save(build("naive_gnn"), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="device: expected a CUDA device"):
        load_checkpoint(path, device="cuda")


def test_precision_names_and_fp16_only_on_cuda():
    cpu = torch.device("cpu")
    assert [resolve_precision(p, cpu) for p in (None, 32, "32", "bf16")] == ["32", "32", "32", "bf16"]
    with pytest.raises(ValueError, match=r"precision: expected one of \['32', 'bf16', 'fp16'\], got '16'"):
        resolve_precision("16", cpu)
    with pytest.raises(ValueError, match="precision: expected 'fp16' only on a CUDA device"):
        Trainer(build("naive_gnn"), device="cpu", precision="fp16")


def test_a_model_on_the_meta_device_is_an_error_not_made_up_weights():
    model = build("naive_gnn").to("meta")
    with pytest.raises(ValueError, match="model: expected parameters with data, got .* on the meta device"):
        Trainer(model, device="cpu")


def test_model_and_data_on_different_devices_is_a_clear_error(molecules):
    batch = next(iter(DataLoader(molecules, batch_size=8)))
    model = build("naive_gnn")
    with pytest.raises(ValueError, match="model: expected parameters with data, got NaiveGNN on the meta device"):
        measure_equivariance(model.to("meta"), batch, SO3(), model.spec, 2)
    model = build("naive_gnn")
    with pytest.raises(ValueError, match="data: expected tensors with data, got tensors on the meta device"):
        measure_equivariance(model, to_device(batch, torch.device("meta")), SO3(), model.spec, 2)


# --- CPU, named explicitly -----------------------------------------------------------------------
def test_trainer_on_the_cpu_named_explicitly(molecules):
    seen = []
    model = build("naive_gnn")
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].pos.device))
    loader = DataLoader(molecules, batch_size=16, shuffle=True)
    trainer = Trainer(model, "regression", [EquivarianceRegularizer(SO3(), model.spec)], max_epochs=1, device="cpu")
    trainer.progress = False
    history = trainer.fit(loader, loader)
    assert trainer.device == torch.device("cpu") and trainer.precision == "32"
    assert {p.device for p in model.parameters()} == {torch.device("cpu")} and set(seen) == {torch.device("cpu")}
    assert torch.isfinite(torch.tensor(history[-1]["train_loss"]))


def test_to_device_never_moves_the_callers_graph(molecules):
    batch = next(iter(DataLoader(molecules, batch_size=4)))
    moved = to_device(batch, torch.device("meta"))
    assert batch.pos.device.type == "cpu" and moved.pos.device.type == "meta" and moved.num_graphs == 4


# --- mixed precision -----------------------------------------------------------------------------
def _fit(molecules, precision: str, epochs: int = 2):
    torch.manual_seed(0)
    model = build("egnn", hidden=16, num_layers=2)  # E(3)-invariant by construction
    trainer = Trainer(model, "regression", max_epochs=epochs, device="cpu", precision=precision, progress=False)
    history = trainer.fit(DataLoader(molecules[:32], batch_size=16, shuffle=True))
    return trainer, history


def test_bf16_on_the_cpu_trains_and_leaves_the_measured_equivariance_alone(molecules):
    full, full_history = _fit(molecules, "32")
    mixed, mixed_history = _fit(molecules, "bf16")
    losses = [r["train_loss"] for r in mixed_history]
    assert all(torch.isfinite(torch.tensor(losses)))
    # autocast was on: bfloat16 rounding changes the training losses of the same seed
    assert losses != [r["train_loss"] for r in full_history]
    val = DataLoader(molecules[32:], batch_size=16)
    metrics = mixed.evaluate(val)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # evaluation measures in float32 even in here
        inside = mixed.evaluate(val)
    assert inside["equivariance_error"] == metrics["equivariance_error"] and inside["rmse"] == metrics["rmse"]
    # an exactly invariant float32 model: float32 round-off, not bfloat16's 4e-3
    assert metrics["equivariance_error"] < 1e-5 and full.evaluate(val)["equivariance_error"] < 1e-5


def test_penalties_are_compared_in_float32_under_autocast(molecules):
    batch = next(iter(DataLoader(molecules, batch_size=8)))
    model = build("naive_gnn")
    reg = EquivarianceRegularizer(SO3(), model.spec)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (penalty,) = stacked_forward(model, batch, [reg], torch.Generator().manual_seed(0))
    assert out.dtype == torch.bfloat16 and penalty.dtype == torch.float32


# --- DDP ---------------------------------------------------------------------------------------
def test_ddp_backend_and_device_per_rank(monkeypatch):
    assert distributed.backend(torch.device("cpu")) == "gloo"
    assert distributed.backend(torch.device("cuda", 0)) == "nccl"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="LOCAL_RANK: expected a rank below the 1 GPUs of this machine, got 1"):
        distributed.local_device(torch.device("cuda"))


# --- CUDA --------------------------------------------------------------------------------------
@needs_cuda
def test_cuda_trains_a_few_steps_with_a_regularizer(molecules):
    model = build("naive_gnn")
    loader = DataLoader(molecules, batch_size=16, shuffle=True)
    trainer = Trainer(model, "regression", [EquivarianceRegularizer(SO3(), model.spec)], max_epochs=2, device="cuda")
    trainer.progress = False
    history = trainer.fit(loader, loader)
    assert {p.device.type for p in model.parameters()} == {"cuda"}
    assert all(torch.isfinite(torch.tensor([r["train_loss"] for r in history])))
    assert history[-1]["val_equivariance_error"] > 1e-4  # a naive GNN is not invariant: it is measured


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_trains(molecules, precision):
    model = build("naive_gnn")
    trainer = Trainer(model, "regression", max_epochs=2, device="cuda", precision=precision, progress=False)
    history = trainer.fit(DataLoader(molecules, batch_size=16, shuffle=True))
    assert all(torch.isfinite(torch.tensor([r["train_loss"] for r in history])))


@needs_cuda
def test_cuda_measures_equivariance_like_the_cpu(molecules):
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        model = build("egnn", hidden=16, num_layers=2)
    batch = to_dtype(next(iter(DataLoader(molecules, batch_size=16))), torch.float64)
    on_cpu = measure_equivariance(model, batch, SO3(), model.spec, 4, torch.Generator().manual_seed(0))
    model.cuda()
    on_gpu = measure_equivariance(
        model, to_device(batch, torch.device("cuda")), SO3(), model.spec, 4, torch.Generator().manual_seed(0)
    )
    assert on_gpu.relative.device.type == "cuda" and on_gpu.error < 1e-10 and on_cpu.error < 1e-10


@needs_cuda
def test_a_checkpoint_saved_on_cuda_loads_on_the_cpu(tmp_path):
    model = build("naive_gnn").cuda()
    path = save(model, tmp_path / "model.pt")
    loaded = load_checkpoint(path, device="cpu")
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a.cpu(), b), name
