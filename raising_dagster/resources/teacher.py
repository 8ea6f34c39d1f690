"""The teacher resource: one teacher per run, started once, closed at the end of the run."""

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from raising_dagster.resources.settings import RaisingResource
from raising_dagster.teacher import Teacher, build_teacher


class TeacherResource(ConfigurableResource):
    """Builds the configured teacher lazily and closes it when the run's step ends."""

    raising: RaisingResource
    _teacher: Teacher | None = PrivateAttr(default=None)

    def get(self) -> Teacher:
        if self._teacher is None:
            self._teacher = build_teacher(self.raising.settings)
        return self._teacher

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._teacher is not None:
            self._teacher.close()
            self._teacher = None
