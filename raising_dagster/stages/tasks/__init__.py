"""The framing stages, each in one home (stages/tasks/<stage>.py): the teachers and the checks
look a stage up here instead of branching on its name."""

from __future__ import annotations

import polars as pl

from raising_dagster.stages.tasks.base import FramingTask
from raising_dagster.stages.tasks.experiential import ExperientialTask
from raising_dagster.stages.tasks.first_person import FirstPersonTask
from raising_dagster.stages.tasks.social import SocialTask
from raising_dagster.teacher.base import Stage

TASKS: dict[Stage, FramingTask] = {
    "first_person": FirstPersonTask(),
    "experiential": ExperientialTask(),
    "social": SocialTask(),
}
BY_VARIANT: dict[str, FramingTask] = {task.variant: task for task in TASKS.values()}


def framed_for_variant(texts: pl.Expr, variant: pl.Expr) -> pl.Expr:
    """True where a record is framed as its variant's stage requires (records of several
    variants in one frame, e.g. the ordered curriculum)."""
    result = pl.lit(False)
    for name, task in BY_VARIANT.items():
        result = pl.when(variant == name).then(task.framed(texts)).otherwise(result)
    return result


__all__ = ["BY_VARIANT", "TASKS", "FramingTask", "framed_for_variant"]
