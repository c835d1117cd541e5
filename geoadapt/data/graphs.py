"""TU graph-classification benchmarks through PyG's ``TUDataset``, read offline from ``$GEOADAPT_DATA``."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch_geometric import transforms as T
from torch_geometric.data import Data
from torch_geometric.datasets import TUDataset
from torch_geometric.utils import degree

from geoadapt.data.cache import cache_root, data_root, file_lock, stage_raw

TU_NAMES = ("MUTAG", "PTC_MR", "PROTEINS", "NCI1", "ENZYMES", "IMDB-BINARY")


def load_tu(name: str, root: str | None = None) -> TUDataset:
    """PyG ``TUDataset`` ``name`` from ``<root or $GEOADAPT_DATA>/TUDataset/<name>/raw``, processed in our cache.

    Graphs without node features (IMDB-BINARY) get one-hot degree features (Xu et al. 2019).
    """
    if name not in TU_NAMES:
        raise ValueError(f"TU dataset name: expected one of {TU_NAMES}, got {name!r}")
    source = data_root(root) / "TUDataset" / name / "raw"
    required = [f"{name}_{part}.txt" for part in ("A", "graph_indicator", "graph_labels")]
    work = cache_root() / "TUDataset"
    with file_lock(work / f".{name}.lock"):
        stage_raw(source, work / name, required, f"TUDataset {name}")
        dataset = TUDataset(str(work), name)
        if dataset.num_node_features == 0:
            max_degree = int(max(int(degree(g.edge_index[0], g.num_nodes).max()) for g in dataset if g.num_edges))
            dataset = TUDataset(str(work), name, transform=T.OneHotDegree(max_degree))
    return dataset


def stratified_folds(
    labels: torch.Tensor | np.ndarray, n_splits: int = 10, seed: int = 0, val_fraction: float = 0.1
) -> list[dict[str, np.ndarray]]:
    """Stratified k-fold splits (Xu et al. 2019; Errica et al. 2020): ``[{train, val, test}]`` index arrays.

    Each fold's test part is one of ``n_splits`` stratified folds; ``val_fraction`` of the rest is held
    out (stratified) for model selection, so the test fold is never used to choose an epoch.
    """
    labels = np.asarray(labels).reshape(-1)
    folds = []
    outer = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train_val, test in outer.split(np.zeros(len(labels)), labels):
        if val_fraction > 0:
            inner = StratifiedKFold(n_splits=max(2, round(1 / val_fraction)), shuffle=True, random_state=seed)
            tr, va = next(inner.split(np.zeros(len(train_val)), labels[train_val]))
            folds.append({"train": train_val[tr], "val": train_val[va], "test": test})
        else:
            folds.append({"train": train_val, "val": np.array([], dtype=int), "test": test})
    return folds


def add_laplacian_pe(graph: Data, k: int = 4, attr_name: str = "eigvecs", seed: int | None = 0) -> Data:
    """``graph`` with its first ``k`` non-trivial Laplacian eigenvectors in ``attr_name`` ``(N, k)``.

    PyG's ``AddLaplacianEigenvectorPE`` needs more than ``k`` nodes; smaller graphs get the eigenvectors
    they have, padded with zero columns, so every graph of a dataset has the same width. PyG gives each
    eigenvector a random sign from the global RNG, whose seed differs per process: a dataset would get other
    signs in every run, and a model that is not sign invariant other results. ``seed`` fixes those signs
    (per graph, from the seed and the graph's size); ``None`` keeps the global RNG.
    """
    n = graph.num_nodes
    usable = max(0, min(k, n - 2))  # the transform needs k < n - 1 for its sparse/dense solver
    if usable == 0:
        out = graph.clone()
        out[attr_name] = torch.zeros(n, k)
        return out
    transform = T.AddLaplacianEigenvectorPE(usable, attr_name=attr_name, is_undirected=True)
    if seed is None:
        out = transform(graph.clone())
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + n * 10_007 + graph.num_edges)
            out = transform(graph.clone())
    if usable < k:
        out[attr_name] = torch.cat([out[attr_name], torch.zeros(n, k - usable)], dim=1)
    return out
