"""The one registry of tasks: the Trainer, the command line, the data loaders and the dataset cards read it."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from geoadapt.tasks.base import Task

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a :class:`~geoadapt.tasks.Task` subclass available by its ``name``
    (``Trainer(model, "<name>")``, ``task=<name>`` on the command line and in dataset cards)."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task: expected a subclass of geoadapt.tasks.Task, got {cls!r}")
    if not isinstance(cls.name, str) or not cls.name:
        raise ValueError(f"task class {cls.__name__}: expected a non-empty string 'name', got {cls.name!r}")
    TASKS[cls.name] = cls
    return cls


def check_card_task(task: str) -> None:
    """``ValueError`` unless ``task`` is a registered task that reads dataset cards (``data_kind == "cards"``)."""
    readers = [name for name, cls in TASKS.items() if cls.data_kind == "cards"]
    if task not in readers:
        raise ValueError(f"task: expected a task of dataset cards among {readers}, got {task!r}")


def task_names() -> tuple[str, ...]:
    """The names of the registered tasks, in registration order."""
    return tuple(TASKS)


def task_options(name: str) -> tuple[str, ...]:
    """The options (keyword arguments) the task ``name`` takes."""
    return tuple(inspect.signature(_task_class(name)).parameters)


def make_task(task: Task | str, options: Mapping[str, Any] | None = None) -> Task:
    """A task object from a registered name and its options, or ``task`` itself when it is one (then without
    options: they belong in its constructor)."""
    if isinstance(task, Task):
        if options:
            raise ValueError(
                f"task_options: expected them with a task name, got {sorted(options)} beside {task!r} "
                "(pass them to its constructor)"
            )
        return task
    cls = _task_class(task)
    unknown = sorted(set(options or {}) - set(task_options(task)))
    if unknown:
        raise ValueError(f"task_options: expected keys among {list(task_options(task))} for {task!r}, got {unknown}")
    return cls(**dict(options or {}))


def _task_class(name: object) -> type[Task]:
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"task: expected one of {list(TASKS)} or a geoadapt.tasks.Task, got {name!r}")
    return TASKS[name]
