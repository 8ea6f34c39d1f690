"""Teachers: the backends that rewrite documents for the framing stages."""

from __future__ import annotations

from raising_dagster.config import RaisingSettings
from raising_dagster.teacher.base import Rewrite, RewriteRequest, Stage, Teacher
from raising_dagster.teacher.template import TemplateTeacher

__all__ = ["Rewrite", "RewriteRequest", "Stage", "Teacher", "TemplateTeacher", "build_teacher"]


def build_teacher(settings: RaisingSettings) -> Teacher:
    """The teacher backend named in the settings."""
    if settings.teacher.backend == "template":
        return TemplateTeacher(identity=settings.identity)
    raise ValueError(f"unknown teacher backend {settings.teacher.backend!r}")
