"""Pure transformations (Polars/DuckDB in, Polars/DuckDB out): no Dagster imports here."""
