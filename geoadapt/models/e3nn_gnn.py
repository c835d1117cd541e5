"""An e3nn tensor-product message-passing network (NequIP / SevenNet style), E(3) equivariant.

Edges: atom pairs within ``cutoff`` Å (or bonds). Messages: ``TP(h_j, Y(r_ij); w(|r_ij|))`` with
spherical harmonics ``Y`` and per-edge weights ``w`` from a radial MLP on a smooth radial basis; a
gated nonlinearity after each layer; any output irreps (``0e`` energy-like, ``1o`` dipole-like).

Two kinds of tensor product (``tensor_product``):

- ``"channelwise"`` (default): a linear up-projection of the node features, "uvu" products (each
  channel meets each spherical harmonic on its own, one weight per channel and path, given per edge),
  a sum over neighbours, then an ``o3.Linear`` that mixes the channels, plus a linear self-connection.
- ``"fully_connected"``: one fully connected product with a weight per edge for every pair of input
  and output channels of every path (TFN style), plus a linear self-interaction. Many times the
  per-edge weights, so many times slower (``benchmarks/e3nn_speed.py``); kept for comparison.
"""

from __future__ import annotations

import math

import torch
from e3nn import nn as enn
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from geoadapt.featurize import ATOM_DIM
from geoadapt.models.geometry import radius_edges, refuse_periodic
from geoadapt.models.readout import Readout
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import graph_index, num_graphs

TENSOR_PRODUCTS = ("channelwise", "fully_connected")
DEFAULT_HIDDEN = {"channelwise": "32x0e+16x1o+8x2e", "fully_connected": "16x0e+8x1o+4x2e"}


def channelwise_tensor_product(
    irreps_in: o3.Irreps, irreps_sh: o3.Irreps, targets: o3.Irreps
) -> tuple[o3.TensorProduct, o3.Irreps]:
    """A "uvu" tensor product of ``irreps_in`` with ``irreps_sh`` onto every irrep found in ``targets``.

    Each channel of each input irrep meets each spherical harmonic on its own (no channel mixing), once
    per allowed output irrep; its weights (``tp.weight_numel``, one per channel and path) come per edge.
    Returns the product and its output irreps simplified (same layout), for the linear that follows.
    """
    wanted = {ir for _, ir in targets}
    paths, instructions = [], []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in wanted:
                    instructions.append((i, j, len(paths)))
                    paths.append((mul, ir_out))
    if not paths:
        raise ValueError(f"irreps: expected {irreps_in} x {irreps_sh} to reach some irrep of {targets}, got none")
    # Sorted outputs give the following linear one block per irrep (fewer, larger matmuls).
    irreps_mid, permutation, _ = o3.Irreps(paths).sort()
    tp = o3.TensorProduct(
        irreps_in,
        irreps_sh,
        irreps_mid,
        [(i, j, permutation[k], "uvu", True) for i, j, k in instructions],
        shared_weights=False,
        internal_weights=False,
    )
    return tp, irreps_mid.simplify()


class ChannelwiseTensorProduct(nn.Module):
    """The "uvu" product of :func:`channelwise_tensor_product`, computed as a few batched matmuls.

    Same inputs, weights (layout ``tp.weight_numel``) and outputs as e3nn's ``o3.TensorProduct`` to rounding,
    faster on CPU: per input irrep, the spherical harmonics are contracted with every Clebsch-Gordan block of
    its paths at once (``(E, 2l1+1, K)``), then one ``bmm`` with the ``(E, mul, 2l1+1)`` features, one product
    with the per-edge weights and one gather into e3nn's layout, in place of e3nn's many small per-path
    einsums and slices. Shapes: ``x1`` ``(E, irreps_in.dim)``, ``x2`` ``(E, irreps_sh.dim)``, ``weight``
    ``(E, weight_numel)`` -> ``(E, irreps_out.dim)``.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, targets: o3.Irreps) -> None:
        super().__init__()
        reference, self.irreps_out = channelwise_tensor_product(irreps_in, irreps_sh, targets)
        self.irreps_in, self.irreps_sh = reference.irreps_in1, reference.irreps_in2
        self.weight_numel = reference.weight_numel
        self.instructions = reference.instructions
        out_slices = reference.irreps_out.slices()
        weight_offsets, offset = [], 0
        for ins in reference.instructions:
            weight_offsets.append(offset)
            offset += ins.path_shape[0]
        # Per input irrep: Clebsch-Gordan blocks (sh_dim, 2l1+1, K), per-edge weight index (mul, K), and
        # where each of its output entries (mul, K) lands in e3nn's layout of the output.
        self.blocks: list[tuple[int, int, int]] = []  # (x1 start, mul, 2l1+1)
        positions = []
        for i, ((mul, ir_in), in_slice) in enumerate(zip(self.irreps_in, self.irreps_in.slices())):
            own = [(k, ins) for k, ins in enumerate(reference.instructions) if ins.i_in1 == i]
            if not own:
                continue
            width = sum(reference.irreps_out[ins.i_out].ir.dim for _, ins in own)
            cg = torch.zeros(self.irreps_sh.dim, ir_in.dim, width, dtype=torch.float64)
            weight_index = torch.zeros(mul, width, dtype=torch.long)
            position = torch.zeros(mul, width, dtype=torch.long)
            column = 0
            for k, ins in own:
                ir_sh, ir_out = self.irreps_sh[ins.i_in2].ir, reference.irreps_out[ins.i_out].ir
                w3j = o3.wigner_3j(ir_in.l, ir_sh.l, ir_out.l, dtype=torch.float64)  # (i, j, k)
                sh_slice = self.irreps_sh.slices()[ins.i_in2]
                cols = slice(column, column + ir_out.dim)
                cg[sh_slice, :, cols] = ins.path_weight * w3j.permute(1, 0, 2)
                weight_index[:, cols] = (weight_offsets[k] + torch.arange(mul))[:, None]
                start = out_slices[ins.i_out].start
                position[:, cols] = start + torch.arange(mul)[:, None] * ir_out.dim + torch.arange(ir_out.dim)
                column += ir_out.dim
            self.register_buffer(f"cg_{i}", cg.reshape(self.irreps_sh.dim, -1).to(torch.get_default_dtype()))
            self.register_buffer(f"weight_index_{i}", weight_index.flatten(), persistent=False)
            self.blocks.append((i, in_slice.start, mul, ir_in.dim))
            positions.append(position.flatten())
        order = torch.cat(positions)
        if not torch.equal(torch.sort(order).values, torch.arange(reference.irreps_out.dim)):
            raise RuntimeError("channel-wise product: output positions do not cover the output once each")
        self.register_buffer("gather", torch.argsort(order), persistent=False)

    def forward(self, x1: Tensor, x2: Tensor, weight: Tensor) -> Tensor:
        edges = x1.shape[0]
        parts = []
        for i, start, mul, dim in self.blocks:
            cg = getattr(self, f"cg_{i}")
            coupling = (x2 @ cg).view(edges, dim, -1)  # (E, 2l1+1, K): harmonics contracted with the CG blocks
            features = x1[:, start : start + mul * dim].reshape(edges, mul, dim)
            product = torch.bmm(features, coupling)  # (E, mul, K)
            parts.append(product * weight.index_select(1, getattr(self, f"weight_index_{i}")).view_as(product))
        flat = torch.cat([part.reshape(edges, -1) for part in parts], dim=1)
        return flat.index_select(1, self.gather)


class Interaction(nn.Module):
    """One equivariant layer: tensor-product messages, sum over neighbours, self-connection, gate.

    ``tensor_product="channelwise"``: up-projection, "uvu" product, channel-mixing linear;
    ``"fully_connected"``: one fully connected product. Shapes: ``h`` ``(N, irreps_in.dim)``,
    ``sh`` ``(E, irreps_sh.dim)``, ``basis`` ``(E, num_basis)`` -> ``(N, irreps_out.dim)``.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_hidden: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        tensor_product: str = "channelwise",
    ) -> None:
        super().__init__()
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l > 0])
        acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
        self.gate = enn.Gate(scalars, acts, o3.Irreps(f"{gated.num_irreps}x0e"), [torch.sigmoid], gated)
        if tensor_product == "channelwise":
            self.up = o3.Linear(irreps_in, irreps_in)
            self.tp = ChannelwiseTensorProduct(irreps_in, irreps_sh, self.gate.irreps_in)
            irreps_mid = self.tp.irreps_out
            self.down = o3.Linear(irreps_mid, self.gate.irreps_in)
        elif tensor_product == "fully_connected":
            self.up = self.down = nn.Identity()
            self.tp = o3.FullyConnectedTensorProduct(irreps_in, irreps_sh, self.gate.irreps_in, shared_weights=False)
        else:
            raise ValueError(f"tensor_product: expected one of {list(TENSOR_PRODUCTS)}, got {tensor_product!r}")
        self.radial = enn.FullyConnectedNet([num_basis, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu)
        self.self_interaction = o3.Linear(irreps_in, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out

    def forward(self, h: Tensor, edge_index: Tensor, sh: Tensor, basis: Tensor, norm: float) -> Tensor:
        src, dst = edge_index
        messages = self.tp(self.up(h)[src], sh, self.radial(basis))
        aggregated = scatter(messages, dst, dim=0, dim_size=h.shape[0], reduce="sum") / norm
        return self.gate(self.self_interaction(h) + self.down(aggregated))


@register("e3nn_gnn")
class E3nnGNN(nn.Module):
    """Equivariant GNN on ``x`` (scalars) and ``pos``; outputs of irreps ``output`` per graph or node.

    Shapes: ``x`` ``(N, in_dim)``, ``pos`` ``(N, 3)`` -> ``(B, output.dim)`` or ``(N, output.dim)``.
    ``tensor_product``: ``"channelwise"`` (default) or ``"fully_connected"`` (see the module docstring);
    ``hidden`` defaults to ``DEFAULT_HIDDEN[tensor_product]``.
    """

    # Per-edge tensor-product weights make big batches memory-bound on CPU: a 25% larger batch costs
    # ~31% more, a separate forward of the copies less (benchmarks/regularizer_overhead.py). So the
    # Trainer runs this model's transformed copies in their own forward.
    stack_copies = False
    # For the same reason a measuring forward on the CPU is cut into runs of at most ~400 nodes (~30 molecules):
    # 400 NCI molecules take 0.31 s in batches of 25 against 0.59 s in batches of 100 (forward, 2 threads).
    split_nodes = 400

    def __init__(
        self,
        in_dim: int = ATOM_DIM,
        output: str = "1x0e",
        hidden: str | None = None,
        num_layers: int = 2,
        lmax: int = 2,
        cutoff: float = 4.0,
        num_basis: int = 8,
        radial_hidden: int = 32,
        edges: str = "radius",
        readout: str = "sum",
        output_level: str = "graph",
        avg_neighbors: float = 8.0,
        tensor_product: str = "channelwise",
    ) -> None:
        super().__init__()
        if edges not in ("radius", "bonds"):
            raise ValueError(f"edges: expected 'radius' or 'bonds', got {edges!r}")
        if tensor_product not in TENSOR_PRODUCTS:
            raise ValueError(f"tensor_product: expected one of {list(TENSOR_PRODUCTS)}, got {tensor_product!r}")
        # Channel-wise products carry fewer weights per channel: twice the channels match the fully connected
        # network's ESOL accuracy, still several times faster (benchmarks/e3nn_speed.py).
        hidden = hidden or DEFAULT_HIDDEN[tensor_product]
        self.cutoff, self.num_basis, self.edges = cutoff, num_basis, edges
        self.norm = math.sqrt(avg_neighbors)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.embed = o3.Linear(f"{in_dim}x0e", o3.Irreps([(m, ir) for m, ir in o3.Irreps(hidden) if ir.l == 0]))
        self.layers = nn.ModuleList()
        irreps = self.embed.irreps_out
        for _ in range(num_layers):
            layer = Interaction(irreps, self.irreps_sh, o3.Irreps(hidden), num_basis, radial_hidden, tensor_product)
            self.layers.append(layer)
            irreps = layer.irreps_out
        self.irreps_hidden = irreps
        self.output_level = output_level
        self.readout = Readout(readout, irreps.dim, gate_dim=irreps.count("0e"))
        self.head = o3.Linear(irreps, output)
        self.spec = Spec(fields={"pos": "1o", "x": f"{in_dim}x0e"}, output=output, output_level=output_level)
        self.symmetry = "Permutation x E3"

    def forward(self, data: Batch) -> Tensor:
        batch = graph_index(data)
        if self.edges == "radius":
            refuse_periodic(data, "e3nn_gnn")
            edge_index = radius_edges(data.pos, batch, self.cutoff)
        else:
            edge_index = data.edge_index
        vec = data.pos[edge_index[0]] - data.pos[edge_index[1]]
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        length = vec.norm(dim=-1)
        basis = soft_one_hot_linspace(
            length, 0.0, self.cutoff, self.num_basis, basis="smooth_finite", cutoff=True
        ) * math.sqrt(self.num_basis)
        h = self.embed(data.x)
        for layer in self.layers:
            h = layer(h, edge_index, sh, basis, self.norm)
        if self.output_level == "graph":
            h = self.readout(h, batch, num_graphs(data))
        return self.head(h)
