"""Great Expectations 1.x suites kept as JSON beside this module, run on Polars frames.

One suite per guarded asset, `<asset>.json`, versioned with the code. A suite names the key columns
it asserts; `key_frame` derives them from the asset's records and GX sees those columns only:
texts never reach GX. Their length (`text_chars`) and framing flags (`stages/framing.py`) are
computed over every record in Polars first, so no record is sampled away and a large shard costs
GX a few narrow columns, not its texts. `expectation_parameters` fill `{"$PARAMETER": ...}` values
from the settings (the configured stage names). GX is imported on the first validation (3-5 s),
once per process, with analytics and progress bars off.
"""

from __future__ import annotations

import json
import math
import os
import threading
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from raising_dagster.expectations.invariants import LISTED, Outcome
from raising_dagster.stages.kinds import KINDS
from raising_dagster.stages.tasks import BY_VARIANT, framed_for_variant
from raising_dagster.storage import Location, scan_parquet

SUITE_DIR = Path(str(resources.files("raising_dagster") / "expectations"))
ID_COLUMN = "doc_id"
_LOCK = threading.Lock()


def suite_path(name: str) -> Path:
    return SUITE_DIR / f"{name}.json"


@cache
def load_suite(name: str) -> dict[str, Any]:
    """The suite `<name>.json` as data: {name, expectations: [{type, kwargs, meta}], meta}."""
    suite = json.loads(suite_path(name).read_text(encoding="utf-8"))
    if suite.get("name") != name or not suite.get("expectations"):
        raise ValueError(f"{suite_path(name)} must be a suite named {name!r} with expectations")
    return suite


def suite_columns(name: str) -> list[str]:
    """The id column, then the columns a suite asserts on, in first-use order."""
    columns = [e["kwargs"]["column"] for e in load_suite(name)["expectations"]]
    return list(dict.fromkeys([ID_COLUMN, *columns]))


def text_flags(variant: str) -> list[pl.Expr]:
    """The derived columns of a stage's texts: length and the framing its stage needs."""
    text = pl.col("text")
    task = BY_VARIANT.get(variant)
    return [text.str.len_chars().alias("text_chars"), *(task.suite_flags(text) if task else [])]


def key_frame(records: pl.DataFrame, suite: str, variant: str | None = None) -> pl.DataFrame:
    """The columns `suite` asserts on, derived from a stage's records (texts dropped)."""
    derived = (
        records.with_columns(text_flags(variant or "")) if "text" in records.columns else records
    )
    if "dialogue" in derived.columns:
        derived = derived.unnest("dialogue")
    return derived.select(suite_columns(suite))


def ordered_key_frame(con: duckdb.DuckDBPyConnection, ordered_file: Location) -> pl.DataFrame:
    """The key columns of the ordered records: texts read in streaming batches and reduced to
    their length and framing flag in Polars; `position_follows` (the position is 0 or its
    predecessor's plus one) computed in DuckDB over the positions."""
    keys = (
        scan_parquet(ordered_file)
        .select(
            pl.exclude("text", "sampling", "seed", "cache_hit", "attempts", "fallback_reason"),
            text_chars=pl.col("text").str.len_chars(),
            framed_for_variant=framed_for_variant(pl.col("text"), pl.col("variant")),
        )
        .collect(engine="streaming")
    )
    con.register("ordered_keys", keys)
    try:
        rows = con.sql(
            """SELECT *, coalesce(position - lag(position) OVER (ORDER BY position) = 1,
                                  position = 0) AS position_follows
               FROM ordered_keys ORDER BY position"""
        ).pl()
    finally:
        con.unregister("ordered_keys")
    return rows


@cache
def _batch_definition() -> Any:
    """One ephemeral GX context with a pandas datasource, made on first use."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        context.data_sources.add_pandas("raising_frames")
        .add_dataframe_asset("records")
        .add_batch_definition_whole_dataframe("whole_frame")
    )


def _suite(name: str) -> Any:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    data = load_suite(name)
    return gx.ExpectationSuite(
        name=name,
        expectations=[ExpectationConfiguration(**e) for e in data["expectations"]],
        meta=data.get("meta", {}),
    )


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a GX result value (numpy scalars, NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def validate(frame: pl.DataFrame, suite: str, parameters: dict[str, Any] | None = None) -> Outcome:
    """Run suite `suite` on the key columns of `frame`; the failing expectations are listed with
    the ids and values of up to 20 offending records each."""
    columns = suite_columns(suite)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        return Outcome(False, f"suite {suite!r}: records lack columns {missing}", {"suite": suite})
    with _LOCK:  # one GX context per process; its datasource is not made for parallel batches
        result = (
            _batch_definition()
            .get_batch(batch_parameters={"dataframe": frame.select(columns).to_pandas()})
            .validate(
                _suite(suite),
                expectation_parameters={"kinds": sorted(KINDS), **(parameters or {})},
                result_format={
                    "result_format": "SUMMARY",
                    "unexpected_index_column_names": [ID_COLUMN],
                    "partial_unexpected_count": LISTED,
                },
            )
        )
    failed = []
    for r in result.results:
        if r.success:
            continue
        config = r.expectation_config
        failed.append(
            {
                "expectation": config.type,
                "column": config.kwargs.get("column"),
                "why": (config.meta or {}).get("why"),
                "unexpected_count": r.result.get("unexpected_count"),
                "unexpected_records": _plain(r.result.get("partial_unexpected_index_list")),
                "error": (r.exception_info or {}).get("exception_message"),
            }
        )
    summary = ", ".join(f"{f['expectation']}({f['column']})" for f in failed)
    n = len(result.results)
    return Outcome(
        not failed,
        f"suite {suite!r}: {n - len(failed)}/{n} expectations met on {frame.height} records"
        + (f"; failed: {summary}" if failed else ""),
        {
            "suite": suite,
            "records": frame.height,
            "expectations": n,
            "failed_expectations": failed,
        },
    )


def suite_outcome(
    records: pl.DataFrame, suite: str, variant: str | None = None, **parameters: Any
) -> Outcome:
    """Validate a stage's records against its suite (key columns derived first)."""
    return validate(key_frame(records, suite, variant), suite, parameters)
