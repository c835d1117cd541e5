"""Molecules labelled with energies and forces: MD17 frames and MMFF94-labelled rdkit conformers.

Every graph holds ``z`` ``(N,)`` (atomic numbers, hydrogens included), ``pos`` ``(N, 3)`` in Å,
``energy`` ``(1, 1)`` in eV (graph level), ``force`` ``(N, 3)`` in eV/Å (node level, ``1o``) and
``y`` = ``energy`` for the regression Trainer. Units: 1 kcal/mol = 0.0433641 eV (4.184 kJ/mol over
96.4853 kJ/mol per eV). Energies of the two sources have different references (MD17: DFT total
energies; MMFF94: force-field energies): refit a model's per-element energy shift before
comparing absolute energies.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from geoadapt.data.cache import cache_root, content_key, data_root, file_lock, load_graphs, save_graphs, stage_raw
from geoadapt.spec import Spec

KCAL_PER_MOL = 0.0433641  # eV
POTENTIAL_SPEC = Spec(fields={"pos": "1o", "force": "1o"}, output="0e")
# With stress labels (B, 3, 3) in eV/Å³: a symmetric rank-2 tensor, R S R^T under rotations (geoadapt.groups.lattice).
POTENTIAL_STRESS_SPEC = Spec(fields={"pos": "1o", "force": "1o", "stress": "0e+2e"}, output="0e")
MMFF_VERSION = 1  # bump when the MMFF labelling changes, so stale caches are not reused


@dataclass
class PotentialDataset(Dataset):
    """Molecular graphs with energies and forces, and the molecules that could not be labelled.

    ``failures`` holds ``(index, smiles, reason)`` for each molecule (or conformer) left out. ``e0s`` maps an
    atomic number to the energy (eV) of one isolated atom of it, where the source gives them
    (``config_type=IsolatedAtom`` frames of an extxyz file, :func:`geoadapt.io.read`).
    """

    name: str
    graphs: list[Data]
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    spec: Spec = POTENTIAL_SPEC
    e0s: dict[int, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.graphs)

    def __iter__(self) -> Iterator[Data]:
        return iter(self.graphs)

    def __getitem__(self, index: int | Sequence[int] | torch.Tensor) -> Data | PotentialDataset:
        if isinstance(index, int):
            return self.graphs[index]
        return PotentialDataset(self.name, [self.graphs[int(i)] for i in index], self.failures, self.spec, self.e0s)

    @property
    def energies(self) -> torch.Tensor:
        """All energies in eV, ``(len,)``."""
        return torch.cat([g.energy.reshape(-1) for g in self.graphs])

    def summary(self) -> str:
        """One line: graphs kept, molecules that failed, and the elements with an isolated-atom energy."""
        e0s = f", E0s of elements {sorted(self.e0s)}" if self.e0s else ""
        stress = " and stresses" if "stress" in self.spec.fields else ""
        return (
            f"{self.name}: {len(self.graphs)} graphs with energies and forces{stress}, {len(self.failures)} failed{e0s}"
        )


def labelled_graph(z: np.ndarray | torch.Tensor, pos, energy: float, force) -> Data:
    """A graph with ``z`` ``(N,)``, ``pos`` ``(N, 3)`` Å, ``energy`` ``(1, 1)`` eV, ``force`` ``(N, 3)`` eV/Å, ``y``."""
    z = torch.as_tensor(z, dtype=torch.long).reshape(-1)
    pos = torch.as_tensor(pos, dtype=torch.float32)
    force = torch.as_tensor(force, dtype=torch.float32)
    n = z.numel()
    for name, value in (("pos", pos), ("force", force)):
        if tuple(value.shape) != (n, 3):
            raise ValueError(f"{name}: expected shape ({n}, 3) for {n} atoms, got {tuple(value.shape)}")
    energy_t = torch.tensor([[float(energy)]], dtype=torch.float32)
    return Data(z=z, pos=pos, energy=energy_t, force=force, y=energy_t)


def load_md17(molecule: str = "ethanol", root: str | None = None) -> PotentialDataset:
    """MD17 frames of ``molecule`` (PyG ``MD17``, processed in the cache), energies in eV and forces in eV/Å.

    The MD17 files store kcal/mol and kcal/mol/Å; both are multiplied by :data:`KCAL_PER_MOL`.
    """
    from torch_geometric.datasets import MD17

    work = cache_root() / "MD17" / molecule
    with file_lock(work.parent / f".{molecule}.lock"):
        stage_raw(data_root(root) / "MD17" / molecule / "raw", work, [f"md17_{molecule}.npz"], f"MD17 {molecule}")
        frames = MD17(str(work.parent), name=molecule)
    graphs = [
        labelled_graph(f.z, f.pos, float(f.energy.reshape(-1)[0]) * KCAL_PER_MOL, f.force * KCAL_PER_MOL)
        for f in frames
    ]
    return PotentialDataset(f"md17_{molecule}", graphs)


def mmff_molecule_set(name: str, limit: int | None = None, max_atoms: int = 30) -> list[str]:
    """SMILES of a named set, in file order, keeping molecules that MMFF94 can type and that have at
    most ``max_atoms`` atoms with hydrogens; the first ``limit`` of them.

    Sets: ``"nci"`` (rdkit's ``NCI/first_5K``).
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from geoadapt.data.rdkit_sets import read_nci5k

    sources = {"nci": lambda: read_nci5k()[0]}
    if name not in sources:
        raise ValueError(f"molecule set: expected one of {sorted(sources)}, got {name!r}")
    kept = []
    for smiles in sources[name]():
        if limit is not None and len(kept) >= limit:
            break
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            continue
        molh = Chem.AddHs(mol)
        if molh.GetNumAtoms() <= max_atoms and AllChem.MMFFHasAllMoleculeParams(molh):
            kept.append(smiles)
    return kept


def _mmff_conformers(
    index: int, smiles: str, count: int, displacement: float, seed: int, optimize: bool
) -> tuple[list[Data], list[str]]:
    """MMFF94-labelled conformers of one molecule, and the reasons for any left out."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None or mol.GetNumAtoms() == 0:
        return [], ["SMILES does not parse"]
    molh = Chem.AddHs(mol)
    if not AllChem.MMFFHasAllMoleculeParams(molh):
        return [], ["MMFF94 has no parameters for some atom"]
    params = AllChem.ETKDGv3()
    params.randomSeed = 0xF00D + seed  # rdkit repeats conformers for randomSeed=0 (as in featurize.embed)
    ids = list(AllChem.EmbedMultipleConfs(molh, numConfs=count, params=params))
    if not ids:
        params.useRandomCoords = True
        ids = list(AllChem.EmbedMultipleConfs(molh, numConfs=count, params=params))
    if not ids:
        return [], ["ETKDG embedding failed"]
    properties = AllChem.MMFFGetMoleculeProperties(molh)
    if optimize:
        AllChem.MMFFOptimizeMoleculeConfs(molh, maxIters=500)
    z = np.array([a.GetAtomicNum() for a in molh.GetAtoms()])
    rng = np.random.default_rng([seed, index])
    graphs, reasons = [], []
    for conf_id in ids:
        pos = molh.GetConformer(conf_id).GetPositions()
        pos = pos + rng.normal(0.0, displacement, size=pos.shape)
        # Label exactly the coordinates that are stored (float32), so labels and positions agree.
        pos = pos.astype(np.float32).astype(np.float64)
        forcefield = AllChem.MMFFGetMoleculeForceField(molh, properties, confId=conf_id)
        flat = pos.reshape(-1).tolist()
        energy = forcefield.CalcEnergy(flat)
        grad = np.asarray(forcefield.CalcGrad(flat)).reshape(-1, 3)
        if not (math.isfinite(energy) and np.isfinite(grad).all()):
            reasons.append(f"conformer {conf_id}: non-finite MMFF94 energy or gradient")
            continue
        graph = labelled_graph(z, pos, energy * KCAL_PER_MOL, -grad * KCAL_PER_MOL)
        graph.smiles, graph.mol_id, graph.conformer = smiles.strip(), torch.tensor([index]), torch.tensor([conf_id])
        graphs.append(graph)
    return graphs, reasons


def load_mmff_conformers(
    molecules: str | Sequence[str],
    conformers_per_molecule: int = 4,
    displacement: float = 0.05,
    seed: int = 0,
    limit: int | None = None,
    max_atoms: int = 30,
    optimize: bool = True,
    cache: bool = True,
) -> PotentialDataset:
    """rdkit conformers labelled with MMFF94 energies (eV) and forces (eV/Å), cached under the cache root.

    Each molecule gets hydrogens (``AddHs``), ``conformers_per_molecule`` ETKDG conformers (seeded),
    an MMFF94 optimization (``optimize``), then Gaussian noise of standard deviation ``displacement``
    Å on every coordinate, so the forces are non-zero. Labels: rdkit's ``CalcEnergy`` and
    ``-CalcGrad``, kcal/mol -> eV.

    Args:
        molecules: a named set (see :func:`mmff_molecule_set`, filtered by ``max_atoms``) or a list
            of SMILES (kept as given; ``limit`` takes the first ones).
        limit: number of molecules to use.

    Molecules that fail (unparsable, no MMFF94 parameters, no embedding) are listed in ``failures``
    with the reason, never dropped silently. The cache file is keyed by the content (SMILES, options,
    rdkit version) and written atomically.
    """
    from rdkit import rdBase

    if conformers_per_molecule < 1:
        raise ValueError(f"conformers_per_molecule: expected >= 1, got {conformers_per_molecule}")
    if displacement < 0:
        raise ValueError(f"displacement: expected >= 0 Å, got {displacement}")
    if isinstance(molecules, str):
        label, smiles = molecules, mmff_molecule_set(molecules, limit, max_atoms)
    else:
        label, smiles = "smiles", [str(s) for s in molecules][:limit]
    options = [conformers_per_molecule, float(displacement), seed, optimize]
    key = content_key(["mmff", MMFF_VERSION, rdBase.rdkitVersion, smiles, options])
    path = cache_root() / "potentials" / f"mmff-{label}-{key}.pt"
    name = f"mmff_{label}"
    if cache and path.is_file():
        stored = load_graphs(path)
        return PotentialDataset(name, stored["graphs"], stored["failures"])
    graphs, failures = [], []
    for index, smi in enumerate(smiles):
        made, reasons = _mmff_conformers(index, smi, conformers_per_molecule, displacement, seed, optimize)
        graphs.extend(made)
        failures.extend((index, smi, reason) for reason in reasons)
    if cache:
        save_graphs(path, graphs, failures=failures)
    return PotentialDataset(name, graphs, failures)
