"""SevenNet pretrained interatomic potentials, loaded offline from the checkpoints inside the ``sevenn`` wheel.

``build("sevennet_0")`` (SevenNet-0, 11 Jul 2024), ``build("sevennet_l3i5")`` and
``build("sevennet_mf_0", modal="PBE")`` (multi-fidelity; ``modal`` picks the fidelity) wrap
SevenNet's NequIP-style e3nn network trained on MPtrj (energies in eV, positions in Å). Needs the
optional extra ``geoadapt[sevennet]``; ``sevenn`` is imported only when such a model is built.

Only checkpoint files that exist inside the installed wheel are opened, by path: a name that is
not bundled is refused, so nothing is ever downloaded.

Outputs: ``model(data)`` is the energy ``(B, 1)`` in eV (graph level, ``0e``);
``model.potential(data)`` gives energy and forces ``(N, 3)`` in eV/Å (``-dE/dpos`` by autograd);
``model.potential(data, stress=True)`` adds the stress ``(B, 3, 3)`` in eV/Å³ of crystals (strain
derivative, ASE's sign); ``geoadapt.models.potential.Forces(model)`` is the node-level force view (``1o``).
Input: a PyG ``Data`` / ``Batch`` with ``z`` (atomic numbers) and ``pos`` (Å), and for periodic systems
``cell`` ``(B, 3, 3)`` (lattice vectors as rows, Å) and ``pbc`` ``(B, 3)`` bool. The neighbour graph is built
at the checkpoint's cutoff (5 Å) with periodic images along the periodic lattice vectors
(:mod:`geoadapt.models.neighbours`): molecules, slabs (``pbc`` ``[T, T, F]``) and crystals, cells smaller than
the cutoff included, give the energies, forces and stress of sevenn's own ``SevenNetCalculator``.

Per-element energy shift: SevenNet implements :class:`geoadapt.models.potential.EnergyShift`, so
:func:`~geoadapt.models.energy_shift.refit_energy_shift` (also importable from here) and
:func:`~geoadapt.models.energy_shift.set_isolated_atom_energies` move its energy reference.

Symmetry: proper rotations, translations and atom permutations. The checkpoints are built with
``is_parity=False``, so they are *not* mirror-symmetric: forces of a mirror image differ from the
mirrored forces by about 1% (relative).

Precision: ``build(name, dtype=torch.float64)`` casts the network and recomputes its
Clebsch-Gordan constants in float64 (the checkpoints store them in float32); ``model.double()``
also works but keeps float32-rounded constants (force equivariance errors near 1e-9 instead of 1e-15).
``dtype=None`` takes torch's default dtype, so ``with default_dtype(torch.float64): build(name)`` works
too (sevenn itself cannot build under a float64 default).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.utils import scatter

from geoadapt.dtypes import default_dtype
from geoadapt.models.energy_shift import ShiftRefit, predict_energies, refit_energy_shift  # noqa: F401 (kept here)
from geoadapt.models.neighbours import edge_vectors, graph_neighbours
from geoadapt.models.potential import PotentialOutput, autograd_potential, check_known_elements
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import GraphData, num_graphs

# geoadapt name -> checkpoint file under sevenn/pretrained_potentials/ in the installed wheel.
BUNDLED = {
    "sevennet_0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "sevennet_l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
    "sevennet_mf_0": "SevenNet_MF_0/checkpoint_sevennet_mf_0.pth",
}
SPEC = Spec(fields={"pos": "1o"}, output="0e")
SYMMETRY = "Permutation x SE3"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_W3J = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)$")
_FOLDED = re.compile(r"\._tensor_constant\d+$")


def _import_sevenn() -> Any:
    try:
        import sevenn
    except ImportError as err:
        raise ImportError(
            "SevenNet models need the optional dependency 'sevenn': pip install 'geoadapt[sevennet]'"
        ) from err
    return sevenn


def bundled_checkpoint(name: str) -> Path:
    """Path of the checkpoint file of ``name`` inside the installed ``sevenn`` wheel (never downloaded)."""
    if name not in BUNDLED:
        raise ValueError(
            f"SevenNet checkpoint {name!r}: expected one bundled in the sevenn wheel {sorted(BUNDLED)} "
            "(geoadapt never downloads checkpoints)"
        )
    path = Path(_import_sevenn().__file__).parent / "pretrained_potentials" / BUNDLED[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"SevenNet checkpoint {name!r}: file {path.name!r} not found in {path.parent} "
            "(this sevenn version does not bundle it; geoadapt never downloads checkpoints)"
        )
    return path


def _as_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        dtype = torch.get_default_dtype()
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
        dtype = _DTYPES[dtype]
    if dtype not in _DTYPES.values():
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    return dtype


def _cast_onehot(module: nn.Module, args: tuple, output: dict[str, Tensor]) -> dict[str, Tensor]:
    # SevenNet's one-hot embedding always emits float32; follow the dtype the network was cast to
    # (a non-persistent buffer on the module, so .to(), .double() and deepcopy keep it right).
    dtype = module.dtype_probe.dtype
    for key in {module.key_output, module.key_additional_output} - {None}:
        output[key] = output[key].to(dtype)
    return output


def _exact_wigner_3j(net: nn.Module) -> None:
    """Replace the float32 Clebsch-Gordan buffers stored in the checkpoint by float64 values from e3nn."""
    for name, buffer in net.named_buffers():
        match = _W3J.search(name)
        if match is None:
            continue
        exact = o3.wigner_3j(*map(int, match.groups()), dtype=torch.float64)
        if exact.shape != buffer.shape or not torch.allclose(buffer.to(torch.float64), exact, atol=1e-6):
            raise RuntimeError(f"SevenNet buffer {name}: expected e3nn's wigner_3j{tuple(match.groups())}, got others")
        with torch.no_grad():
            buffer.copy_(exact)


def _drop_folded_constants(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    # A deep copy re-traces e3nn's generated tensor-product code, which folds its Clebsch-Gordan
    # products into new buffers (`_tensor_constant<k>`). They are constants derived from the
    # `_w3j_*` buffers, not weights: keep them out of checkpoints so copies and fresh builds agree.
    for key in [k for k in state_dict if k.startswith(prefix) and _FOLDED.search(k)]:
        del state_dict[key]


def _ignore_folded_constants(module: nn.Module, incompatible: Any) -> None:
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not _FOLDED.search(k)]
    incompatible.unexpected_keys[:] = [k for k in incompatible.unexpected_keys if not _FOLDED.search(k)]


class SevenNet(nn.Module):
    """A bundled SevenNet checkpoint as a geoadapt energy model (see the module docstring).

    Attributes:
        net: SevenNet's own network (its force head removed: forces come from autograd on ``pos``).
        cutoff: radius of the neighbour graph in Å, read from the checkpoint.
        elements: atomic numbers the checkpoint knows.
        modal: the fidelity of a multi-fidelity checkpoint (``None`` otherwise).
        frozen_parameter_names: parameters the checkpoint keeps fixed on purpose (per-element
            energy shift and scale, neighbour-count normalizers); adaptation must leave them frozen.
    """

    spec = SPEC
    symmetry = SYMMETRY

    def __init__(self, name: str, modal: str | None = None, dtype: str | torch.dtype | None = None) -> None:
        super().__init__()
        _import_sevenn()
        import sevenn._keys as KEY
        from sevenn.util import load_checkpoint

        self.name = name
        target_dtype = _as_dtype(dtype)
        checkpoint = load_checkpoint(str(bundled_checkpoint(name)))  # an existing path: sevenn resolves no name
        # sevenn's backward-compatibility code compares stored float32 constants with fresh ones: build
        # in float32 whatever the default dtype, then cast.
        with default_dtype(torch.float32):
            net = checkpoint.build_model()
        config = checkpoint.config
        net.delete_module_by_key("force_output")
        net.key_grad = None
        net.set_is_batch_data(True)
        self.cutoff = float(config[KEY.CUTOFF])
        self.elements = sorted(int(z) for z in config[KEY.TYPE_MAP])
        self.modal_map = dict(net.modal_map or {})
        if self.modal_map:
            if modal not in self.modal_map:
                raise ValueError(f"{name} modal: expected one of {sorted(self.modal_map)}, got {modal!r}")
            net.eval_modal_map = False  # the modal index is set per graph in forward
        elif modal is not None:
            raise ValueError(f"{name} modal: expected None (a single-fidelity checkpoint), got {modal!r}")
        self.modal = modal
        for key in ("onehot_idx_to_onehot", "one_hot_modality"):
            if key in net._modules:
                net._modules[key].register_buffer("dtype_probe", torch.zeros(0), persistent=False)
                net._modules[key].register_forward_hook(_cast_onehot)
        self.register_buffer("z_to_type", net.z_to_onehot_tensor.clone(), persistent=False)
        self.net = net.to(target_dtype)
        if target_dtype == torch.float64:
            _exact_wigner_3j(self.net)
        self.register_state_dict_post_hook(_drop_folded_constants)
        self.register_load_state_dict_post_hook(_ignore_folded_constants)
        self.frozen_parameter_names = tuple(n for n, p in self.named_parameters() if not p.requires_grad)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the network."""
        return self.net.rescale_atomic_energy.shift.dtype

    def _check_elements(self, z: Tensor) -> None:
        inside = (z >= 0) & (z < self.z_to_type.numel())
        types = torch.full_like(z, -1)
        types[inside] = self.z_to_type[z[inside]]
        if bool((types < 0).any()):
            unknown = sorted({int(v) for v in z[types < 0]})
            raise ValueError(f"z: expected atomic numbers known to {self.name} {self.elements}, got {unknown}")

    def forward(self, data: GraphData) -> Tensor:
        """Energy in eV, ``(B, 1)``, of the structures in ``data`` (``z`` ``(N,)``, ``pos`` ``(N, 3)`` in Å; for
        periodic ones ``cell`` ``(B, 3, 3)`` in Å and ``pbc`` ``(B, 3)``)."""
        import sevenn._keys as KEY

        z = data.z.long()
        self._check_elements(z)
        pos = data.pos.to(self.dtype)
        n_graphs = num_graphs(data)
        neighbours, batch, cell = graph_neighbours(data, pos, self.cutoff)
        inputs = {
            KEY.ATOMIC_NUMBERS: z,
            KEY.POS: pos,
            KEY.EDGE_IDX: neighbours.edge_index,
            # SevenNet's (ASE's) convention: r_j - r_i (+ the lattice shift), from source EDGE_IDX[0] to target [1]
            KEY.EDGE_VEC: edge_vectors(pos, neighbours, batch, cell),
            KEY.BATCH: batch,
            KEY.NUM_ATOMS: torch.bincount(batch, minlength=n_graphs),
            KEY.CELL_VOLUME: torch.zeros(n_graphs, dtype=pos.dtype, device=pos.device),
        }
        if self.modal is not None:
            inputs[KEY.MODAL_TYPE] = torch.full((n_graphs,), self.modal_map[self.modal], device=pos.device)
        atomic = self.net(inputs)[KEY.ATOMIC_ENERGY].reshape(-1)
        return scatter(atomic, batch, dim=0, dim_size=n_graphs, reduce="sum").unsqueeze(-1)

    def potential(self, data: GraphData, stress: bool = False) -> PotentialOutput:
        """Energy ``(B, 1)`` in eV, forces ``-dE/dpos`` ``(N, 3)`` in eV/Å and, with ``stress=True`` (systems
        periodic in 3D), stress ``(1/V) dE/dε`` ``(B, 3, 3)`` in eV/Å³ (also under ``no_grad``)."""
        return autograd_potential(self, data, stress)

    def forces(self, data: GraphData) -> Tensor:
        """Forces ``(N, 3)`` in eV/Å."""
        return self.potential(data).forces

    def _shift_row(self) -> Tensor:
        """The per-element energy shift of the active fidelity: a view ``(num_types,)`` of the frozen parameter."""
        rescale = self.net.rescale_atomic_energy
        shift = rescale.shift
        if shift.dim() == 2:
            return shift[self.modal_map[self.modal]]
        if shift.dim() == 1 and shift.numel() == len(self.elements):
            return shift
        raise TypeError(f"{self.name}: expected a per-element energy shift, got shape {tuple(shift.shape)}")

    def energy_shift(self) -> dict[int, float]:
        """The per-element energy shift (eV) of the active fidelity: atomic number -> eV."""
        row = self._shift_row()
        return {z: float(row[int(self.z_to_type[z])]) for z in self.elements}

    def add_energy_shift(self, change: Mapping[int, float]) -> None:
        """Add ``change[z]`` eV to the shift of each element named (the shift stays frozen, as in the checkpoint)."""
        check_known_elements(self.elements, change, "change", who=self.name)
        row = self._shift_row()
        with torch.no_grad():
            for z, delta in change.items():
                row[int(self.z_to_type[int(z)])] += float(delta)


@register("sevennet_0")
class SevenNet0(SevenNet):
    """SevenNet-0 (11 Jul 2024): 843k parameters, lmax 2, 5 layers, 5 Å cutoff, trained on MPtrj (PBE)."""

    def __init__(self, dtype: str | torch.dtype | None = None) -> None:
        super().__init__("sevennet_0", dtype=dtype)


@register("sevennet_l3i5")
class SevenNetL3i5(SevenNet):
    """SevenNet-l3i5: as SevenNet-0 with lmax 3 (1.17M parameters)."""

    def __init__(self, dtype: str | torch.dtype | None = None) -> None:
        super().__init__("sevennet_l3i5", dtype=dtype)


@register("sevennet_mf_0")
class SevenNetMF0(SevenNet):
    """SevenNet-MF-0, multi-fidelity: ``modal`` picks the level of theory (``"PBE"`` or ``"R2SCAN"``)."""

    def __init__(self, modal: str | None = None, dtype: str | torch.dtype | None = None) -> None:
        super().__init__("sevennet_mf_0", modal=modal, dtype=dtype)
