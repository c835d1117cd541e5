"""MACE models (mace-torch's own ``MACE`` / ``ScaleShiftMACE`` modules) as geoadapt energy models.

mace-torch's modules take a dictionary (``positions``, one-hot ``node_attrs``, ``edge_index``, Cartesian
``shifts``, ``batch``, ``ptr``, ...) built by its own data pipeline. :func:`mace_inputs` builds that dictionary from
a PyG batch with ``z``, ``pos`` and, for periodic systems, ``cell`` and ``pbc`` (geoadapt's neighbour list, periodic
images included, :mod:`geoadapt.models.neighbours`), so :class:`MACEEnergy` is an energy model ``(B, 1)`` in eV like
any other: forces and stress come from :func:`geoadapt.models.potential.potential` (autograd on ``pos`` and a strain
of ``pos`` and ``cell``), it trains in the Trainer with every strategy and serves as an ASE calculator. Declare it with
:func:`geoadapt.models.wrap` (spec, symmetry, how to rebuild it)::

    mace = MACE(r_max=5.0, ..., atomic_numbers=[29, 79], ...)  # mace.modules.MACE, random init
    model = wrap(MACEEnergy(mace), spec=MACE_SPEC, symmetry="Permutation x E3")

Per-element energy shift: MACE's energy holds ``sum over atoms of E0[z]`` (its ``atomic_energies_fn`` block), so
:class:`MACEEnergy` implements :class:`~geoadapt.models.potential.EnergyShift` on that block, and
``refit_energy_shift`` / ``set_isolated_atom_energies`` (:mod:`geoadapt.models.energy_shift`) work on it.
mace-torch itself is imported by the caller (it pins ``e3nn==0.4.4``; geoadapt works with that release).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoadapt.models.neighbours import graph_neighbours
from geoadapt.models.potential import check_known_elements, model_dtype
from geoadapt.spec import Spec
from geoadapt.structure import GraphData, num_graphs

MACE_SPEC = Spec(fields={"pos": "1o"}, output="0e")


def element_index(z: Tensor, elements: Tensor) -> Tensor:
    """Index of each atomic number ``z`` ``(N,)`` in ``elements`` ``(K,)``; ``ValueError`` for one it does not hold."""
    match = z.long()[:, None] == elements.to(z.device)[None, :]
    unknown = ~match.any(dim=1)
    if bool(unknown.any()):
        shown = sorted({int(v) for v in z[unknown]})
        raise ValueError(f"z: expected atomic numbers known to the model {elements.tolist()}, got {shown}")
    return match.long().argmax(dim=1)


def mace_inputs(data: GraphData, elements: Tensor, cutoff: float, dtype: torch.dtype) -> dict[str, Tensor]:
    """mace-torch's input dictionary of a PyG batch (``z`` ``(N,)``, ``pos`` ``(N, 3)`` Å; ``cell`` ``(B, 3, 3)``
    and ``pbc`` ``(B, 3)`` for periodic systems): ``positions``, ``node_attrs`` ``(N, K)`` one-hot over ``elements``,
    ``edge_index`` ``(2, E)`` (sender, receiver), ``shifts`` ``(E, 3)`` Å and ``unit_shifts``, ``cell``
    ``(3B, 3)``, ``batch``, ``ptr``. The shifts are differentiable in ``cell``; ``positions`` is a copy of ``pos``
    in ``dtype`` (mace-torch switches gradients on for it)."""
    pos = data.pos.to(dtype).clone()
    neighbours, batch, cell = graph_neighbours(data, pos, cutoff)
    source = neighbours.edge_index[0]
    shifts = torch.zeros(source.numel(), 3, dtype=dtype, device=pos.device)
    if cell is not None and neighbours.shifts.numel():
        shifts = torch.einsum("ek,ekl->el", neighbours.shifts.to(dtype), cell[batch[source]])
    graphs = num_graphs(data)
    counts = torch.bincount(batch, minlength=graphs)
    full_cell = cell if cell is not None else torch.zeros(graphs, 3, 3, dtype=dtype, device=pos.device)
    index = element_index(data.z, elements)
    return {
        "positions": pos,
        "node_attrs": F.one_hot(index, elements.numel()).to(dtype),
        "edge_index": neighbours.edge_index,
        "shifts": shifts,
        "unit_shifts": neighbours.shifts.to(dtype),
        "cell": full_cell.reshape(-1, 3),
        "batch": batch,
        "ptr": torch.cat([counts.new_zeros(1), counts.cumsum(0)]),
        "head": torch.zeros(graphs, dtype=torch.long, device=pos.device),
    }


class MACEEnergy(nn.Module):
    """A mace-torch MACE module as a geoadapt energy model: ``model(data)`` is the energy ``(B, 1)`` in eV.

    Args:
        mace: a ``mace.modules.MACE`` (or ``ScaleShiftMACE``) instance, with its ``r_max`` (Å) and
            ``atomic_numbers`` buffers (the elements of its one-hot, in that order).
        head: the index of the head to read (multi-head models; 0 otherwise).

    Attributes: ``elements`` (atomic numbers), ``cutoff`` (Å).
    """

    spec = MACE_SPEC

    def __init__(self, mace: nn.Module, head: int = 0) -> None:
        super().__init__()
        self.mace, self.head = mace, int(head)
        self.cutoff = float(mace.r_max)
        self.elements = [int(z) for z in mace.atomic_numbers]

    def forward(self, data: GraphData) -> Tensor:
        """Energy in eV ``(B, 1)`` of the structures in ``data``."""
        inputs = mace_inputs(data, self.mace.atomic_numbers, self.cutoff, model_dtype(self))
        inputs["head"] = torch.full_like(inputs["head"], self.head)
        out = self.mace(inputs, training=self.training, compute_force=False)
        return out["energy"].reshape(-1, 1)

    def _shift_table(self) -> Tensor:
        """MACE's per-element energies of the head read (a view of its buffer)."""
        table = torch.atleast_2d(self.mace.atomic_energies_fn.atomic_energies)
        return table[self.head]

    def energy_shift(self) -> dict[int, float]:
        """The per-element energy (E0) of each element, eV: atomic number -> eV."""
        return {z: float(e) for z, e in zip(self.elements, self._shift_table())}

    def add_energy_shift(self, change: Mapping[int, float]) -> None:
        """Add ``change[z]`` eV to the E0 of each element named (a buffer: it does not train)."""
        check_known_elements(self.elements, change, "change")
        table = self._shift_table()
        with torch.no_grad():
            for z, delta in change.items():
                table[self.elements.index(int(z))] += float(delta)
