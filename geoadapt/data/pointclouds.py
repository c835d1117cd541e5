"""Point clouds: molecules as atoms, PyG GeometricShapes and ModelNet, QM9 (MD17 lives in ``potentials``)."""

from __future__ import annotations

import torch
from torch_geometric import transforms as T
from torch_geometric.data import Data

from geoadapt.data.cache import cache_root, data_root, file_lock, stage_raw
from geoadapt.data.potentials import load_md17  # noqa: F401  (dataset cards import it from here)
from geoadapt.featurize import ELEMENTS
from geoadapt.spec import Spec

POINT_SPEC = Spec(fields={"pos": "1o"}, output="0e")


def molecule_point_cloud(graph: Data) -> Data:
    """A molecule as a point cloud: atoms are points, the element one-hot is the feature (no bonds)."""
    onehot = graph.x[:, : len(ELEMENTS) + 1]
    return Data(pos=graph.pos, x=onehot, y=graph.y, z=getattr(graph, "z", None))


def load_geometric_shapes(
    train: bool = True, num_points: int = 256, seed: int = 0, root: str | None = None
) -> list[Data]:
    """PyG ``GeometricShapes`` (40 classes) with ``num_points`` points sampled on each mesh (seeded)."""
    from torch_geometric.datasets import GeometricShapes

    source = data_root(root) / "GeometricShapes" / "raw"
    work = cache_root() / "GeometricShapes"
    with file_lock(work.parent / ".GeometricShapes.lock"):
        stage_raw(source, work, ["3d_cube/train/3d_cube.off"], "GeometricShapes")
        meshes = GeometricShapes(str(work), train=train)
    sampler = T.SamplePoints(num_points)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # SamplePoints draws from the global generator
    try:
        clouds = [Data(pos=sampler(mesh.clone()).pos, y=mesh.y) for mesh in meshes]
    finally:
        torch.random.set_rng_state(state)
    return clouds


def load_modelnet(name: str = "10", train: bool = True, num_points: int = 1024, root: str | None = None):
    """PyG ``ModelNet{10,40}`` read from ``$GEOADAPT_DATA/ModelNet<name>/raw`` when its files are there."""
    from torch_geometric.datasets import ModelNet

    source = data_root(root) / f"ModelNet{name}" / "raw"
    if not source.is_dir():
        raise FileNotFoundError(
            f"ModelNet{name}: folder 'raw' not found in {source.parent} "
            "(ModelNet is not staged offline; place its class folders there)"
        )
    work = cache_root() / f"ModelNet{name}"
    with file_lock(work.parent / f".ModelNet{name}.lock"):
        stage_raw(source, work, [], f"ModelNet{name}")
        return ModelNet(str(work), name=name, train=train, transform=T.SamplePoints(num_points))


def load_qm9(root: str | None = None):
    """PyG ``QM9`` (the 21-molecule subset staged offline): ``pos``, ``z``, 19 targets."""
    from torch_geometric.datasets import QM9

    work = cache_root() / "QM9"
    with file_lock(work.parent / ".QM9.lock"):
        stage_raw(data_root(root) / "QM9" / "raw", work, ["gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt"], "QM9")
        return QM9(str(work))
