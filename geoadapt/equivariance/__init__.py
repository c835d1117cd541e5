"""The equivariance engine: ``f(g·x)`` against ``ρ_out(g) f(x)``.

Everything that measures or penalizes equivariance goes through this package: the metrics (without
gradients), the regularizers (with gradients), the report card and the plots. It builds the transformed
copies of a batch (:mod:`~geoadapt.equivariance.copies`), plans and runs the forwards over the batch and its
copies (:mod:`~geoadapt.equivariance.planner`, :mod:`~geoadapt.equivariance.forward`: node budgets, stacking,
dropout and batch norm, captured features), and compares (:mod:`~geoadapt.equivariance.comparison`,
:mod:`~geoadapt.equivariance.distances`, :mod:`~geoadapt.equivariance.scale`). There is one definition of the
error:

.. math::

    Δ = f(g·x) - ρ_{out}(g) f(x)

    a_j = \\sqrt{\\operatorname{mean} Δ^2}   \\quad \\text{over the rows of one sample and the components of block } j

    s_j = \\max\\left(\\sqrt{\\operatorname{mean} (f(x) - c_j)^2},\\ \\sqrt{ε}\\right)
          \\quad \\text{over every row measured}

    r = \\sqrt{\\textstyle\\sum_j d_j (a_j / s_j)^2 / \\sum_j d_j}

A block ``j`` is one entry ``mul x ir`` of ``spec.output`` (``d_j`` its dimension). ``a_j`` is the
**absolute error**, in output units. ``s_j`` is the **scale** of the block: the RMS spread of the
model's outputs over all samples measured, centered (``c_j`` = per-channel mean) for ``0e`` entries and
not centered for the others (a constant vector is itself not equivariant, and its size is what a rotation
moves); ``ε`` is the machine epsilon of the output dtype (``√ε`` is 3e-4 in float32, 1.5e-8 in float64).
``r`` is the **relative error** of one sample under one group element.

Why this scale, rather than the sample's own ``||f(x)||``: a per-sample norm vanishes for outputs that are
zero by symmetry (the dipole of a centrosymmetric molecule: relative errors of 1e5 from round-off) and
grows with an offset (an energy model with outputs near -1000 would look invariant whatever it does). The
spread of the outputs is what the signal varies by; it does not move when a constant is added to an
invariant output and is the same for every sample of a batch. It vanishes only when every output is the
same, where the floor ``√ε`` makes round-off count as exact. With a single ``0e`` row there is no spread,
so the uncentered RMS is used. Pass ``scale=`` to normalize by a scale of your own (e.g. the target std).
"""

from geoadapt.equivariance.budget import STACK_NODES, forward_plan, should_stack, split_nodes, stack_nodes
from geoadapt.equivariance.capture import Capture, feature_spec, layer_irreps
from geoadapt.equivariance.comparison import (
    Comparison,
    block_dims,
    block_matrix,
    compare,
    relative_from_squared,
)
from geoadapt.equivariance.copies import Copies, all_elements, copies_needed, graph_run, make_copies
from geoadapt.equivariance.distances import DISTANCES, distance
from geoadapt.equivariance.divergences import js_logits, kl_logits
from geoadapt.equivariance.forward import CopyOutputs, Outputs, run_copies, transformed_outputs
from geoadapt.equivariance.modes import evaluating, quiet, stochastic_layers
from geoadapt.equivariance.outputs import measured_rows, output_rows
from geoadapt.equivariance.planner import BATCH, Pass, Piece, Plan, plan_forwards
from geoadapt.equivariance.scale import OutputScale, as_scale, block_scale

__all__ = [
    "DISTANCES",
    "STACK_NODES",
    "BATCH",
    "Capture",
    "Comparison",
    "CopyOutputs",
    "Copies",
    "OutputScale",
    "Outputs",
    "Pass",
    "Piece",
    "Plan",
    "all_elements",
    "as_scale",
    "block_dims",
    "block_matrix",
    "block_scale",
    "compare",
    "copies_needed",
    "distance",
    "evaluating",
    "feature_spec",
    "forward_plan",
    "graph_run",
    "js_logits",
    "kl_logits",
    "layer_irreps",
    "make_copies",
    "measured_rows",
    "output_rows",
    "plan_forwards",
    "quiet",
    "relative_from_squared",
    "run_copies",
    "should_stack",
    "split_nodes",
    "stack_nodes",
    "stochastic_layers",
    "transformed_outputs",
]
