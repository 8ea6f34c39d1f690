"""Teachers: the backends that rewrite documents for the framing stages.

Submodules are imported where used (the framing tasks import `teacher.base`, the template teacher
imports the tasks), so importing this package stays light and free of cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raising_dagster.config import RaisingSettings
from raising_dagster.teacher.base import Rewrite, RewriteRequest, Stage, Teacher

if TYPE_CHECKING:
    from raising_dagster.teacher.template import TemplateTeacher

__all__ = ["Rewrite", "RewriteRequest", "Stage", "Teacher", "TemplateTeacher", "build_teacher"]

CACHE_DIR = "teacher_cache"


def __getattr__(name: str) -> Any:
    if name == "TemplateTeacher":
        from raising_dagster.teacher.template import TemplateTeacher

        return TemplateTeacher
    raise AttributeError(name)


def build_teacher(settings: RaisingSettings) -> Teacher:
    """The teacher backend named in the settings; the LLM backends are wrapped in the generation
    cache (`settings.teacher_cache_dir`, a local folder) unless `teacher.cache` is off."""
    from raising_dagster.teacher.template import TemplateTeacher

    config = settings.teacher
    teacher: Teacher
    if config.backend == "template":
        return TemplateTeacher(identity=settings.identity)
    if config.backend == "vllm":
        from raising_dagster.teacher.vllm import VllmTeacher

        teacher = VllmTeacher(config, settings.identity, pooled=True)
    elif config.backend == "openai":
        from raising_dagster.teacher.openai import OpenAITeacher

        teacher = OpenAITeacher(config, settings.identity)
    else:
        raise ValueError(f"unknown teacher backend {config.backend!r}")
    if not config.cache:
        return teacher
    from raising_dagster.teacher.cache import CachedTeacher, GenerationCache

    return CachedTeacher(teacher, GenerationCache(settings.teacher_cache_dir))
