"""Datasets: rdkit featurization and conformers, molecule sets, TU graphs, images, point clouds, cards."""

from geoadapt.data.cards import card_names, csv_card, files_present, load, read_card
from geoadapt.data.molecules import MoleculeDataset, build_molecules, from_csv
from geoadapt.featurize import MOLECULE_SPEC, smiles_to_data

__all__ = [
    "MOLECULE_SPEC",
    "MoleculeDataset",
    "build_molecules",
    "card_names",
    "csv_card",
    "files_present",
    "from_csv",
    "load",
    "read_card",
    "smiles_to_data",
]
