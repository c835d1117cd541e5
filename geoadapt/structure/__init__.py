"""Layout of the data kinds geoadapt acts on: PyG graphs, point clouds ``(B, N, 3)``, images ``(B, C, H, W)``.

One place decides which rows of a PyG field belong to nodes, edges or graphs (:mod:`~geoadapt.structure.levels`,
read from PyG's own batching metadata), and how to cut (:mod:`~geoadapt.structure.slicing`), stack and copy
(:mod:`~geoadapt.structure.stacking`) batches for one forward pass over many transformed copies. The batches
built here are complete: ``to_data_list()``, ``get_example(i)`` and ``index_select`` give the graphs
``Batch.from_data_list`` would.
"""

from geoadapt.structure.kinds import (
    GRAPH_FIELDS,
    LEVELS,
    AnyData,
    GraphData,
    graph_index,
    is_graph,
    is_image,
    is_index_field,
    is_point_cloud,
    num_graphs,
    to_dtype,
)
from geoadapt.structure.levels import field_level, field_levels, row_graph
from geoadapt.structure.slicing import gather_graphs, runs_under, select_graphs, take_graphs, window
from geoadapt.structure.stacking import concat, repeat, take_copies

__all__ = [
    "GRAPH_FIELDS",
    "LEVELS",
    "AnyData",
    "GraphData",
    "concat",
    "field_level",
    "field_levels",
    "gather_graphs",
    "graph_index",
    "is_graph",
    "is_image",
    "is_index_field",
    "is_point_cloud",
    "num_graphs",
    "repeat",
    "row_graph",
    "runs_under",
    "select_graphs",
    "take_copies",
    "take_graphs",
    "to_dtype",
    "window",
]
