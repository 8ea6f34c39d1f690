"""The resource that holds every pipeline setting (validated pydantic `RaisingSettings`)."""

import os
from functools import cache
from pathlib import Path

from dagster import ConfigurableResource

from raising_dagster.config import RaisingSettings, load_settings
from raising_dagster.store import StoreLayout


@cache
def _settings(
    config_file: str | None,
    landing_dir: str | None,
    store_dir: str | None,
    teacher: str | None,
    codex_path: str | None,
) -> RaisingSettings:
    overrides: dict[str, object] = {
        "landing_dir": landing_dir,
        "store_dir": store_dir,
        "codex_path": codex_path,
    }
    if teacher is not None:
        overrides["teacher"] = {"backend": teacher}
    return load_settings(Path(config_file) if config_file else None, **overrides)


class RaisingResource(ConfigurableResource):
    """Settings for every asset: YAML `config_file` < RAISING_* env vars < the fields set here."""

    config_file: str | None = None
    landing_dir: str | None = None
    store_dir: str | None = None
    teacher: str | None = None
    codex_path: str | None = None

    @property
    def settings(self) -> RaisingSettings:
        config_file = self.config_file or os.environ.get("RAISING_CONFIG_FILE")
        return _settings(
            config_file, self.landing_dir, self.store_dir, self.teacher, self.codex_path
        )

    @property
    def layout(self) -> StoreLayout:
        settings = self.settings
        return StoreLayout(settings.store_dir, settings.storage.work_dir)
