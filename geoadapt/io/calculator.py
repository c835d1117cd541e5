"""ASE out: any geoadapt energy model as an ASE calculator (relaxations, molecular dynamics, phonons, ...).

``Calculator(model)`` takes a model (anything with ``model.potential(data)`` or an energy ``model(data)``
``(B, 1)`` in eV, adapted models included) or the path of a geoadapt checkpoint (:func:`geoadapt.checkpoints.load`).
Like sevenn's ``SevenNetCalculator`` and MACE's ``MACECalculator``, the model is loaded once and each call builds
the neighbour list of the atoms (periodic images included) and takes forces and stress from autograd.

Results: ``energy`` and ``free_energy`` (eV; the same number, as for any potential without electronic
entropy), ``forces`` ``(N, 3)`` (eV/Å) and, for systems periodic in 3D (``pbc`` all true), ``stress`` in eV/Å³ as
Voigt-6 in ASE's order (xx, yy, zz, yz, xz, xy). For a molecule or a slab, asking for the stress raises ASE's
``PropertyNotImplementedError`` (as ASE's own EMT does without a 3D cell): a stress needs a volume.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from ase import Atoms
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import nn

from geoadapt.devices import resolve_device
from geoadapt.io.reading import atoms_to_data
from geoadapt.models.potential import model_dtype, potential


class Calculator(AseCalculator):
    """An ASE calculator of a geoadapt energy model (see the module docstring).

    Args:
        model: the model, or the path of a geoadapt checkpoint.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when there is one); the model is moved there
            and put in evaluation mode.
        **kwargs: passed to ASE's ``Calculator`` (``label``, ``directory``, ...).

    Positions and cells are handed to the model in its own dtype (float64 for a model built with
    ``dtype=torch.float64``).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self, model: nn.Module | str | os.PathLike, device: str | torch.device = "auto", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.device = resolve_device(device)
        if isinstance(model, (str, os.PathLike)):
            from geoadapt.checkpoints import load

            model = load(model, device=self.device)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch module or a checkpoint path, got {type(model).__name__}")
        self.model = model.to(self.device).eval()
        self.dtype = model_dtype(self.model)

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        """Fill ``self.results`` for ``atoms``: energy, free energy and forces, and the stress when it is asked for
        (periodic in 3D); dynamics that need only forces do not pay for the strain derivative."""
        super().calculate(atoms, properties, system_changes)
        properties = properties or ["energy"]
        periodic = bool(self.atoms.pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError(
                f"stress: expected a system periodic in 3D (pbc all True), got pbc {self.atoms.pbc.tolist()}"
            )
        data = atoms_to_data(self.atoms, self.dtype).to(self.device)
        want_stress = "stress" in properties
        with torch.no_grad():
            out = potential(self.model, data, stress=want_stress)
        energy = float(out.energy.reshape(()))
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out.forces.detach().cpu().to(torch.float64).numpy().reshape(-1, 3),
        }
        if want_stress:
            stress = out.stress.detach().cpu().to(torch.float64).numpy().reshape(3, 3)
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)

    def __repr__(self) -> str:
        return f"Calculator({type(self.model).__name__}, device={self.device}, dtype={self.dtype})"
