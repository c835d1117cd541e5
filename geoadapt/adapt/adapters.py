"""Low-rank adapters (LoRA) on ``nn.Linear``, and an equivariance-safe variant for e3nn ``o3.Linear``.

Every adapter is made in the dtype and on the device of the layer it wraps (a float64 model gets float64
adapters, a model on a GPU gets adapters there), whatever torch's default dtype.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch
from e3nn import o3
from torch import Tensor, nn

from geoadapt.dtypes import default_dtype


def _dtype_and_device(base: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The floating dtype and the device of ``base``'s weights."""
    tensor = next((t for t in [*base.parameters(), *base.buffers()] if t.is_floating_point()), None)
    if tensor is None:
        return torch.get_default_dtype(), torch.device("cpu")
    return tensor.dtype, tensor.device


class LoRALinear(nn.Module):
    """``W x + (alpha / rank) B A x`` with the pretrained ``W`` frozen and ``B = 0`` at start (same outputs)."""

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 1.0) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        dtype, device = _dtype_and_device(base)
        self.down = nn.Parameter(torch.empty(rank, base.in_features, dtype=dtype, device=device))
        self.up = nn.Parameter(torch.zeros(base.out_features, rank, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self.scale * (x @ self.down.T) @ self.up.T


class IrrepsAdapter(nn.Module):
    """Low-rank adapter for ``o3.Linear``: ``o3.Linear(in -> rank x each irrep) -> o3.Linear(-> out)``.

    Both maps are e3nn linears, which act within each irrep type, so the adapter is equivariant by
    construction; the second map starts at zero so the adapted model equals the pretrained one.
    """

    def __init__(self, base: o3.Linear, rank: int = 2) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        shared = sorted(
            {ir for _, ir in base.irreps_in} & {ir for _, ir in base.irreps_out}, key=lambda ir: (ir.l, ir.p)
        )
        mid = o3.Irreps([(rank, ir) for ir in shared])
        dtype, device = _dtype_and_device(base)
        with default_dtype(dtype):  # e3nn makes its weights and constants in the default dtype
            self.down = o3.Linear(base.irreps_in, mid).to(device)
            self.up = o3.Linear(mid, base.irreps_out).to(device)
        with torch.no_grad():
            self.up.weight.zero_()
        self.irreps_in, self.irreps_out = base.irreps_in, base.irreps_out

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self.up(self.down(x))


def adaptable_layers(model: nn.Module, targets: Sequence[str] = ("*",), exclude: Sequence[str] = ()) -> list[str]:
    """Names of the ``nn.Linear`` / ``o3.Linear`` (with weights) matching a glob in ``targets``, outside ``exclude``."""
    names = []
    for name, module in model.named_modules():
        if not name or not any(fnmatch.fnmatch(name, t) for t in targets):
            continue
        if any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        if (isinstance(module, o3.Linear) and module.weight_numel > 0) or isinstance(module, nn.Linear):
            names.append(name)
    return names


def add_adapters(
    model: nn.Module,
    rank: int = 4,
    targets: Sequence[str] = ("*",),
    alpha: float = 1.0,
    exclude: Sequence[str] = (),
) -> list[str]:
    """Wrap every ``nn.Linear`` / ``o3.Linear`` whose name matches a glob in ``targets``; freeze the rest.

    Modules named in ``exclude`` (and everything under them) are left as they are. Returns the wrapped
    module names. Only the adapters' parameters stay trainable.
    """
    wrapped = adaptable_layers(model, targets, exclude)
    if not wrapped:
        raise ValueError(
            f"adapter targets: expected globs matching Linear layers, got {list(targets)} matching none"
            + (f" outside {list(exclude)}" if exclude else "")
        )
    for p in model.parameters():
        p.requires_grad_(False)
    for name in wrapped:
        module = model.get_submodule(name)
        if isinstance(module, o3.Linear):
            replacement: nn.Module = IrrepsAdapter(module, max(1, rank // 2))
        else:
            replacement = LoRALinear(module, rank, alpha)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, replacement)
    return wrapped


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of every adapter in ``model`` (not those of the layers they wrap)."""
    params: list[nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, LoRALinear):
            params += [module.down, module.up]
        elif isinstance(module, IrrepsAdapter):
            params += [*module.down.parameters(), *module.up.parameters()]
    return params
