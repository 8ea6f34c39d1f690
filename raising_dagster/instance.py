"""The Dagster instance configuration this project ships: the embedded SQLite instance, or
PostgreSQL (dagster-postgres) when DAGSTER_PG_URL is set. Both carry the run queue and the
`teacher` pool limits (README: Concurrent backfills).

`python -m raising_dagster.instance HOME` writes HOME/dagster.yaml (what `make ui` does) unless
one is there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "instance_config"
SQLITE_YAML = CONFIG_DIR / "dagster.yaml"
POSTGRES_YAML = CONFIG_DIR / "dagster-postgres.yaml"
PG_URL_ENV = "DAGSTER_PG_URL"


def instance_yaml() -> Path:
    """The shipped dagster.yaml for this environment: Postgres when DAGSTER_PG_URL is set."""
    return POSTGRES_YAML if os.environ.get(PG_URL_ENV) else SQLITE_YAML


class InstanceConfigError(ValueError):
    """The instance cannot be configured as asked (a DAGSTER_PG_URL it cannot use)."""


def check_pg_url(url: str) -> None:
    """Refuse a URL that SQLAlchemy 2.1 would hand to a driver that is not installed: it maps a
    bare `postgresql://` to psycopg 3, while dagster-postgres brings psycopg2."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        raise InstanceConfigError(
            f"{PG_URL_ENV} must be a postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB URL"
        )
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise InstanceConfigError(
                f"{PG_URL_ENV} starts with {scheme}://, which SQLAlchemy 2.1 maps to psycopg 3 "
                "(not installed); write postgresql+psycopg2:// (dagster-postgres's driver)"
            ) from None


def prepare_home(home: Path) -> str | None:
    """Write HOME/dagster.yaml from the shipped one unless the folder has one; returns a warning
    when DAGSTER_PG_URL is set but the existing file does not use Postgres storage. Raises
    InstanceConfigError for a DAGSTER_PG_URL that cannot work."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        check_pg_url(url)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(instance_yaml(), target)
        return None
    if os.environ.get(PG_URL_ENV) and "postgres" not in target.read_text(encoding="utf-8"):
        return (
            f"{PG_URL_ENV} is set but {target} configures no Postgres storage: this instance "
            f"stays on SQLite (copy {POSTGRES_YAML} there, or use another Dagster home)"
        )
    return None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m raising_dagster.instance DAGSTER_HOME")
    try:
        warning = prepare_home(Path(sys.argv[1]))
    except InstanceConfigError as exc:
        sys.exit(f"error: {exc}")
    if warning:
        sys.stderr.write(f"warning: {warning}\n")
