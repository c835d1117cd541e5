"""Tasks as objects: regression, classification, potentials, and any task you register.

A :class:`Task` owns what differs between learning problems: splitting a batch into inputs and targets, its
target scaler, its loss, its metrics (in target units), the view of the model that regularizers and equivariance
metrics see, the default distance of the equivariance penalty, its set-up before training and its checks. The
Trainer asks the task and never branches on its name. ``TASKS`` is the one registry: ``Trainer(model, "name")``,
``task=name`` on the command line and the ``task`` of a dataset card all read it; :func:`register_task` adds yours.
"""

from geoadapt.tasks.base import Pair, Task
from geoadapt.tasks.batches import check_output_rows, split_batch
from geoadapt.tasks.classification import Classification
from geoadapt.tasks.potential import Potential
from geoadapt.tasks.potential_terms import PotentialLoss, PotentialView, force_spec, potential_metrics
from geoadapt.tasks.registry import TASKS, check_card_task, make_task, register_task, task_names, task_options
from geoadapt.tasks.regression import Regression

__all__ = [
    "TASKS",
    "Classification",
    "Pair",
    "Potential",
    "PotentialLoss",
    "PotentialView",
    "Regression",
    "Task",
    "check_card_task",
    "check_output_rows",
    "force_spec",
    "make_task",
    "potential_metrics",
    "register_task",
    "split_batch",
    "task_names",
    "task_options",
]
