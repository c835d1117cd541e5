"""Frame and group averaging: exact on symmetric molecules (degenerate PCA), refused where they cannot be."""

from __future__ import annotations

import math

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_add_pool

from geoadapt import Spec
from geoadapt.adapt.symmetrize import FrameAveraged, GroupAveraged, equivariant_frames, pca_frames
from geoadapt.featurize import ATOM_DIM, BOND_DIM, mol_to_graph, smiles_to_data
from geoadapt.groups import E3, O3, SE3, Group
from geoadapt.models import build
from geoadapt.structure import graph_index, num_graphs, repeat, to_dtype
from tests.groups.test_cosets import ChiralModel


def _with_hydrogens(smiles: str, seed: int = 7) -> Data:
    """An rdkit conformer with every hydrogen kept (ETKDG + MMFF), float64."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    AllChem.EmbedMolecule(mol, params)
    AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    data = mol_to_graph(mol)
    data.pos = torch.tensor(mol.GetConformer().GetPositions())
    return to_dtype(data, torch.float64)


def _heavy_atoms(smiles: str) -> Data:
    """An asymmetric molecule as the data sets featurize it (heavy atoms), float64."""
    data = smiles_to_data(smiles, seed=1)[0]
    del data.smiles  # the hand-built molecules have no SMILES: keep the fields batchable together
    return to_dtype(data, torch.float64)


def _ideal(pos: list[list[float]], elements: list[int]) -> Data:
    """A molecule with exactly symmetric coordinates; bonds between atoms closer than 1.8 Å."""
    p = torch.tensor(pos, dtype=torch.float64)
    n = p.shape[0]
    pairs = [[i, j] for i in range(n) for j in range(n) if i != j and float((p[i] - p[j]).norm()) < 1.8]
    edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T
    x = torch.zeros(n, ATOM_DIM, dtype=torch.float64)
    x[torch.arange(n), torch.tensor(elements)] = 1.0
    edge_attr = torch.ones(edge_index.shape[1], BOND_DIM, dtype=torch.float64)
    return Data(x=x, pos=p, edge_index=edge_index, edge_attr=edge_attr, z=torch.tensor(elements))


def _ring(radius: float, k: int = 6) -> list[list[float]]:
    return [[radius * math.cos(2 * math.pi * i / k), radius * math.sin(2 * math.pi * i / k), 0.0] for i in range(k)]


_A = 1.09 / math.sqrt(3)
MOLECULES = {
    "benzene": lambda: _with_hydrogens("c1ccccc1"),
    "methane": lambda: _with_hydrogens("C"),
    "co2": lambda: _with_hydrogens("O=C=O"),
    "ideal benzene": lambda: _ideal(_ring(1.39) + _ring(2.48), [0] * 6 + [11] * 6),
    "ideal methane": lambda: _ideal(
        [[0, 0, 0], [_A, _A, _A], [_A, -_A, -_A], [-_A, _A, -_A], [-_A, -_A, _A]], [0] + [11] * 4
    ),
    "ideal co2": lambda: _ideal([[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]], [0, 2, 2]),
    "ideal sf6": lambda: _ideal(
        [[0, 0, 0]] + [[s * 1.56 * (i == k) for k in range(3)] for i in range(3) for s in (1, -1)], [5] + [3] * 6
    ),
    "one atom": lambda: _ideal([[0.3, -0.2, 1.0]], [0]),
    "aspirin": lambda: _heavy_atoms("CC(=O)Oc1ccccc1C(=O)O"),
}


class NaivePoints(nn.Module):
    """Not equivariant: an MLP of raw coordinates and atom types. Graph level ``0e + 1o + 2e + 1o`` (the last a
    predicted point) or node level ``1o`` points."""

    def __init__(self, node_level: bool = False) -> None:
        super().__init__()
        self.node_level = node_level
        self.net = nn.Sequential(nn.Linear(3 + ATOM_DIM, 32), nn.Tanh(), nn.Linear(32, 3 if node_level else 12))
        if node_level:
            self.spec = Spec(fields={"pos": "1o"}, output="1o", output_level="node", output_positions=(0,))
        else:
            self.spec = Spec(fields={"pos": "1o"}, output="0e+1o+2e+1o", output_positions=(3,))

    def forward(self, data: Batch) -> Tensor:
        h = self.net(torch.cat([data.pos, data.x], dim=1))
        return h if self.node_level else global_add_pool(h, graph_index(data), num_graphs(data))


@torch.no_grad()
def _error(model: nn.Module, data: Batch, group: Group, spec: Spec, seed: int = 0, copies: int = 4) -> float:
    """``max |f(g·x) - ρ(g) f(x)|`` over ``copies`` elements per graph (every coset), computed by hand."""
    stacked = repeat(data, copies)
    g = group.sample_copies(stacked, copies, torch.Generator().manual_seed(seed))
    node_graph = graph_index(stacked) if spec.output_level == "node" else None
    expected = group.act_output(g, model(stacked), spec, node_graph)
    return float((model(group.act(g, stacked, spec)) - expected).abs().max())


@pytest.fixture(scope="module")
def molecules() -> dict[str, Batch]:
    return {name: Batch.from_data_list([make()]) for name, make in MOLECULES.items()}


@pytest.fixture(scope="module")
def naive() -> nn.Module:
    torch.manual_seed(0)
    return build("naive_gnn").double().eval()


@pytest.mark.parametrize("name", list(MOLECULES))
def test_frame_averaging_is_exact_on_symmetric_molecules(name, molecules, naive):
    data = molecules[name]
    averaged = FrameAveraged(naive, naive.spec)
    assert _error(averaged, data, E3(), naive.spec) < 1e-10
    assert _error(FrameAveraged(naive, naive.spec, proper=True), data, SE3(), naive.spec) < 1e-10
    if name != "one atom":  # the check above means something: the model alone is far from invariant
        assert _error(naive, data, E3(), naive.spec) > 1e-4


@pytest.mark.parametrize("node_level", [False, True], ids=["graph 0e+1o+2e+point", "node points"])
@pytest.mark.parametrize("name", list(MOLECULES))
def test_frame_averaging_is_exact_for_vectors_tensors_and_points(name, node_level, molecules):
    torch.manual_seed(1)
    model = NaivePoints(node_level).double()
    data = molecules[name]
    assert _error(FrameAveraged(model, model.spec), data, E3(scale=3.0), model.spec) < 1e-10
    assert _error(FrameAveraged(model, model.spec, proper=True), data, SE3(scale=3.0), model.spec) < 1e-10
    assert _error(model, data, SE3(scale=3.0), model.spec) > 1e-3


def test_one_batch_mixing_every_kind_of_spectrum_is_exact(molecules, naive):
    data = Batch.from_data_list([molecules[name].get_example(0) for name in MOLECULES])
    for model in (naive, NaivePoints().double(), NaivePoints(node_level=True).double()):
        averaged = FrameAveraged(model, model.spec)
        assert _error(averaged, data, E3(), model.spec, seed=3, copies=2) < 1e-10
        # Averaging a batch equals averaging each graph alone: frames never mix graphs.
        alone = torch.cat([averaged(molecules[name]) for name in MOLECULES])
        assert torch.allclose(averaged(data), alone, atol=1e-12)


@pytest.mark.parametrize("name", ["benzene", "methane", "ideal benzene", "ideal methane", "ideal sf6", "aspirin"])
def test_frame_sets_move_with_the_molecule(name, molecules):
    data = molecules[name]
    R, t = E3().sample_copies(data, 1, torch.Generator().manual_seed(4))
    for proper in (False, True):
        before = equivariant_frames(data.pos, data.batch, 1, proper, lmax=2)
        after = equivariant_frames(data.pos @ R[0].T + t, data.batch, 1, proper, lmax=2)
        assert torch.allclose(after.center, before.center @ R[0].T + t, atol=1e-12)
        moved = (R[0] @ before.rotation).reshape(-1, 9)
        # F(g·x) = g F(x) as sets: the same number of frames, each matched by one moved frame.
        assert after.rotation.shape == before.rotation.shape
        distance = torch.cdist(after.rotation.reshape(-1, 9), moved, compute_mode="donot_use_mm_for_euclid_dist")
        assert distance.min(1).values.max() < 1e-10 and not after.stabilized.any()
        if proper:
            assert (torch.det(after.rotation) > 0).all()


@pytest.mark.parametrize("name,lmax,count", [("ideal co2", 2, 3 * 8), ("co2", 0, 8), ("one atom", 2, 24 * 8)])
def test_points_on_a_line_or_at_the_center_also_average_over_their_stabilizer(name, lmax, count, molecules):
    # Their frames are fixed only up to rotations that leave the points alone: lmax + 1 turns about the axis,
    # or the 24 rotations of the cube, each with the 8 sign choices.
    data = molecules[name]
    frames = equivariant_frames(data.pos, data.batch, 1, lmax=lmax)
    assert frames.stabilized.all() and frames.rotation.shape == (count, 3, 3)


def test_pca_frames_refuse_degenerate_spectra(molecules):
    data = Batch.from_data_list([molecules["aspirin"].get_example(0), molecules["ideal benzene"].get_example(0)])
    with pytest.raises(ValueError, match=r"graph 1: covariance eigenvalues \[.*\] are degenerate"):
        pca_frames(data.pos, data.batch, 2)
    frames, center = pca_frames(molecules["aspirin"].pos, molecules["aspirin"].batch, 1)
    assert frames.shape == (8, 1, 3, 3) and center.shape == (1, 3)


def test_linear_molecules_with_other_rotating_inputs_are_refused(molecules, naive):
    data = molecules["ideal co2"].clone()
    data.force = torch.randn(3, 3, dtype=torch.float64)
    spec = Spec(fields={**naive.spec.fields, "force": "1o"}, output="0e")
    with pytest.raises(ValueError, match=r"graph 0: its points are collinear or coincide.*\['force'\]"):
        FrameAveraged(naive, spec)(data)
    aspirin = molecules["aspirin"].clone()  # a generic shape is fine with any inputs
    aspirin.force = torch.randn(aspirin.num_nodes, 3, dtype=torch.float64)
    FrameAveraged(naive, spec)(aspirin)


def test_one_atom_with_l4_outputs_is_refused(molecules):
    model = NaivePoints()
    spec = Spec(fields={"pos": "1o"}, output="4e")
    with pytest.raises(ValueError, match=r"graph 0: all 1 points coincide \(covariance eigenvalues .*l = 4 >= 4"):
        FrameAveraged(model, spec)(molecules["one atom"])


def test_group_averaging_gives_each_coset_its_share(molecules):
    # One proper and one improper element per graph: a pseudoscalar averages to exactly 0 for any draw.
    chiral = ChiralModel()
    data = molecules["aspirin"]
    assert float(chiral(data).abs().max()) > 1e-3
    averaged = GroupAveraged(chiral, O3(), Spec(fields={"pos": "1o"}, output="0e"), n_samples=2)
    for seed in range(10):
        torch.manual_seed(seed)
        assert float(averaged(data).abs().max()) < 1e-12
