"""Dagster assets: thin wrappers over raising_dagster.stages, one module per asset family."""
