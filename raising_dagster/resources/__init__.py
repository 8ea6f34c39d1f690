"""Dagster resources: the settings holder and the teacher."""

from raising_dagster.resources.settings import RaisingResource
from raising_dagster.resources.teacher import TeacherResource

__all__ = ["RaisingResource", "TeacherResource"]
