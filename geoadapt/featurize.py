"""SMILES -> PyG graph with rdkit atom/bond features and an rdkit 3D conformer in ``pos``.

The default featurization (used by every molecular dataset and by ``models.build(name)``):
``x``: ``ATOM_DIM`` invariant scalars per heavy atom, ``edge_attr``: ``BOND_DIM`` bond-type scalars,
``pos``: heavy-atom coordinates in Å from ETKDG + MMFF (seeded), ``z``: atomic numbers.
"""

from __future__ import annotations

import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem
from torch_geometric.data import Data

from geoadapt.spec import Spec

ELEMENTS = (
    6,
    7,
    8,
    9,
    15,
    16,
    17,
    35,
    53,
    5,
    14,
)  # C N O F P S Cl Br I B Si; anything else -> "other"
ATOM_DIM = len(ELEMENTS) + 1 + 5
BOND_TYPES = (
    Chem.BondType.SINGLE,
    Chem.BondType.DOUBLE,
    Chem.BondType.TRIPLE,
    Chem.BondType.AROMATIC,
)
BOND_DIM = len(BOND_TYPES)

MOLECULE_SPEC = Spec(fields={"pos": "1o", "x": f"{ATOM_DIM}x0e", "edge_attr": f"{BOND_DIM}x0e"}, output="0e")

RDLogger.DisableLog("rdApp.*")  # rdkit prints a line per failed molecule; we count failures instead


def atom_features(atom: Chem.Atom) -> list[float]:
    """Element one-hot, aromaticity, ring membership, formal charge, hydrogens/4, degree/4."""
    z = atom.GetAtomicNum()
    onehot = [float(z == e) for e in ELEMENTS] + [float(z not in ELEMENTS)]
    return onehot + [
        float(atom.GetIsAromatic()),
        float(atom.IsInRing()),
        float(atom.GetFormalCharge()),
        atom.GetTotalNumHs() / 4.0,
        atom.GetDegree() / 4.0,
    ]


def embed(mol: Chem.Mol, seed: int = 0, num_conformers: int = 1) -> Chem.Mol | None:
    """Add hydrogens, embed with ETKDGv3 and MMFF-optimize; ``None`` when embedding fails."""
    molh = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    # rdkit gives identical conformers for randomSeed=0 in EmbedMultipleConfs: offset every seed.
    params.randomSeed = 0xF00D + seed
    ids = list(AllChem.EmbedMultipleConfs(molh, numConfs=num_conformers, params=params))
    if not ids:
        params.useRandomCoords = True  # the usual fallback for large or strained molecules
        ids = list(AllChem.EmbedMultipleConfs(molh, numConfs=num_conformers, params=params))
        if not ids:
            return None
    if AllChem.MMFFHasAllMoleculeParams(molh):
        AllChem.MMFFOptimizeMoleculeConfs(molh, maxIters=200)
    return Chem.RemoveHs(molh)


def mol_to_graph(mol: Chem.Mol) -> Data:
    """Atom and bond features of ``mol`` (no coordinates): ``x`` ``(N, ATOM_DIM)``, both edge directions."""
    x = torch.tensor([atom_features(a) for a in mol.GetAtoms()], dtype=torch.float32)
    src, dst, attr = [], [], []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        feat = [float(bond.GetBondType() == t) for t in BOND_TYPES]
        src += [i, j]
        dst += [j, i]
        attr += [feat, feat]
    edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    edge_attr = torch.tensor(attr, dtype=torch.float32).reshape(-1, BOND_DIM)
    z = torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.long)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, z=z)


def smiles_to_data(smiles: str, seed: int = 0, num_conformers: int = 1) -> list[Data] | None:
    """One graph per conformer of ``smiles`` (``pos`` in Å), or ``None`` if it fails to parse or embed."""
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    try:
        molh = embed(mol, seed, num_conformers)
    except (RuntimeError, ValueError):
        return None
    if molh is None:
        return None
    graph = mol_to_graph(molh)
    out = []
    for conf in molh.GetConformers():
        data = graph.clone()
        data.pos = torch.tensor(conf.GetPositions(), dtype=torch.float32)
        data.smiles = smiles.strip()
        out.append(data)
    return out
