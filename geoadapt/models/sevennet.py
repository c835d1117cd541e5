"""SevenNet pretrained interatomic potentials, loaded offline from the checkpoints inside the ``sevenn`` wheel.

``build("sevennet_0")`` (SevenNet-0, 11 Jul 2024), ``build("sevennet_l3i5")`` and
``build("sevennet_mf_0", modal="PBE")`` (multi-fidelity; ``modal`` picks the fidelity) wrap
SevenNet's NequIP-style e3nn network trained on MPtrj (energies in eV, positions in Å). Needs the
optional extra ``geoadapt[sevennet]``; ``sevenn`` is imported only when such a model is built.

Only checkpoint files that exist inside the installed wheel are opened, by path: a name that is
not bundled is refused, so nothing is ever downloaded.

Outputs: ``model(data)`` is the energy ``(B, 1)`` in eV (graph level, ``0e``);
``model.potential(data)`` gives energy and forces ``(N, 3)`` in eV/Å (``-dE/dpos`` by autograd);
``geoadapt.models.potential.Forces(model)`` is the node-level force view (``1o``). Input: a PyG
``Data`` / ``Batch`` with ``z`` (atomic numbers) and ``pos`` (Å); the radius graph is built at the
checkpoint's cutoff (5 Å), without periodic images: a periodic system (``pbc`` true on any axis) is
refused with a ``ValueError`` rather than answered for the wrong structure.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from geoadapt.dtypes import default_dtype
from geoadapt.models.geometry import radius_edges, refuse_periodic
from geoadapt.models.potential import PotentialOutput, autograd_potential
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import GraphData, graph_index, num_graphs

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
        """Energy in eV, ``(B, 1)``, of the molecules in ``data`` (``z`` ``(N,)``, ``pos`` ``(N, 3)`` in Å)."""
        import sevenn._keys as KEY

        z = data.z.long()
        self._check_elements(z)
        refuse_periodic(data, self.name)
        pos = data.pos.to(self.dtype)
        batch = graph_index(data).to(pos.device)
        n_graphs = num_graphs(data)
        edge_index = radius_edges(pos.detach(), batch, self.cutoff)
        inputs = {
            KEY.ATOMIC_NUMBERS: z,
            KEY.POS: pos,
            KEY.EDGE_IDX: edge_index,
            KEY.EDGE_VEC: pos[edge_index[1]] - pos[edge_index[0]],  # SevenNet's (ASE's) convention: r_j - r_i
            KEY.BATCH: batch,
            KEY.NUM_ATOMS: torch.bincount(batch, minlength=n_graphs),
            KEY.CELL_VOLUME: torch.zeros(n_graphs, dtype=pos.dtype, device=pos.device),
        }
        if self.modal is not None:
            inputs[KEY.MODAL_TYPE] = torch.full((n_graphs,), self.modal_map[self.modal], device=pos.device)
        atomic = self.net(inputs)[KEY.ATOMIC_ENERGY].reshape(-1)
        return scatter(atomic, batch, dim=0, dim_size=n_graphs, reduce="sum").unsqueeze(-1)

    def potential(self, data: GraphData) -> PotentialOutput:
        """Energy ``(B, 1)`` in eV and forces ``-dE/dpos`` ``(N, 3)`` in eV/Å (also under ``no_grad``)."""
        return autograd_potential(self, data)

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


@dataclass
class ShiftRefit:
    """Result of :func:`refit_energy_shift`.

    Attributes:
        change: eV added to the energy shift of each element (atomic number -> eV).
        rank: rank of the (molecules x elements) composition matrix; below the number of elements
            only the combinations the data determines are fitted (minimum-norm solution).
        mae_before, mae_after: mean absolute energy error per atom (eV/atom) on the fitted data.
    """

    change: dict[int, float]
    rank: int
    mae_before: float
    mae_after: float


def predict_energies(model: nn.Module, graphs: list[Data], batch_size: int = 32) -> Tensor:
    """Energies ``(len(graphs),)`` of ``model`` on ``graphs`` (float64, no gradients)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(graphs), batch_size):
            batch = Batch.from_data_list(graphs[start : start + batch_size])
            out.append(model(batch).reshape(-1).to(torch.float64))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def refit_energy_shift(model: SevenNet, graphs: list[Data], batch_size: int = 32) -> ShiftRefit:
    """Refit the per-element energy shift of ``model`` by least squares on a new energy reference.

    ``graphs`` carry ``z`` ``(N,)``, ``pos`` ``(N, 3)`` and ``energy`` (eV, one value per graph).
    Solves ``min_d sum_m (E_m - Ê_m - sum_e n_me d_e)^2`` over the elements ``e`` present (``n_me``:
    atoms of element ``e`` in molecule ``m``) and adds ``d_e`` to the shift; the network, the scales
    and everything else stay as they are, and the shift stays frozen (``requires_grad=False``).
    """
    graphs = list(graphs)
    if not graphs:
        raise ValueError("graphs: expected at least one labelled molecule, got none")
    missing = [i for i, g in enumerate(graphs) if getattr(g, "energy", None) is None]
    if missing:
        raise ValueError(
            f"graphs: expected an 'energy' field on every graph, missing on {len(missing)} (first {missing[0]})"
        )
    target = torch.cat([g.energy.reshape(-1).to(torch.float64) for g in graphs])
    if target.numel() != len(graphs):
        raise ValueError(f"energy: expected one value per graph ({len(graphs)}), got {target.numel()}")
    present = sorted({int(v) for g in graphs for v in g.z})
    column = {z: i for i, z in enumerate(present)}
    counts = torch.zeros(len(graphs), len(present), dtype=torch.float64)
    for m, g in enumerate(graphs):
        for v in g.z.tolist():
            counts[m, column[int(v)]] += 1
    atoms = counts.sum(1)
    predicted = predict_energies(model, graphs, batch_size)
    residual = target - predicted
    solution = torch.linalg.lstsq(counts, residual.unsqueeze(-1), driver="gelsd")
    change = solution.solution.squeeze(-1)
    after = residual - counts @ change
    shift = model._shift_row()
    with torch.no_grad():
        for z, delta in zip(present, change.tolist()):
            shift[int(model.z_to_type[z])] += delta
    return ShiftRefit(
        change={z: float(d) for z, d in zip(present, change)},
        rank=int(solution.rank),
        mae_before=float((residual.abs() / atoms).mean()),
        mae_after=float((after.abs() / atoms).mean()),
    )
