"""The audit report of a publication: one self-contained HTML file (styles and plots inline, no
script, nothing fetched), computed in DuckDB over the publication's own files (its records,
manifest and lineage table), so it can be rebuilt for any kept publication.

Sections: summary; records per stage and variant; difficulty per stage; value coverage per stage
(a heatmap of the taught values, and detected vs assigned); fallback rates by stage and reason;
quarantine rates by reason; prompt and model versions; left-out shards and withdrawals; sampled
records per stage with their lineage.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import duckdb

from raising_dagster.stages.lineage import AUDIT_DIR, LINEAGE_FILE
from raising_dagster.stages.order import sql_literal
from raising_dagster.storage import Location, attach
from raising_dagster.teacher.base import STAGES

REPORT_FILE = f"{AUDIT_DIR}/report.html"
SAMPLES_PER_STAGE = 3
_EXCERPT = 400
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.85em; }
.muted { color: #666; } img { max-width: 100%; border: 1px solid #ddd; }
"""


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    result = con.execute(query)
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _heat(share: float) -> str:
    """A cell shaded by a share in [0, 1] (white to blue), with the share as a percentage."""
    alpha = max(0.0, min(1.0, share))
    return (
        f'<td class="num" style="background: rgba(33, 102, 172, {alpha:.2f}); '
        f'color: {"#fff" if alpha > 0.55 else "#222"}">{share:.0%}</td>'
    )


def _heatmap(title: str, shares: dict[tuple[str, str], float], stages: list, values: list) -> str:
    head = "<th>stage</th>" + "".join(f"<th>{html.escape(v)}</th>" for v in values)
    body = "".join(
        f"<tr><td>{html.escape(s)}</td>"
        + "".join(_heat(shares.get((s, v), 0.0)) for v in values)
        + "</tr>"
        for s in stages
    )
    return f"<h3>{html.escape(title)}</h3><table><tr>{head}</tr>{body}</table>"


def _plot(publication: Location, relative: str) -> str:
    path = publication / relative
    if not path.exists():
        return ""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}"></p>'


def _excerpt(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + " [...]"


def build_report(publication: Location) -> str:
    """The report's HTML for the publication folder (module doc)."""
    manifest = json.loads((publication / "manifest.json").read_text(encoding="utf-8"))
    info_file = publication / "publication.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    data = sql_literal(publication / "data" / "*.parquet")
    lineage_file = publication / LINEAGE_FILE
    lineage = sql_literal(lineage_file)
    stage_names = [s["name"] for s in manifest["stages"]]
    con = duckdb.connect()
    attach(con, publication)
    try:
        per_variant = _rows(
            con,
            f"""SELECT stage, variant, count(*) AS records, min(position) AS first_position,
                       max(position) AS last_position, sum(n_tokens) AS approx_tokens
                FROM read_parquet({data}) GROUP BY ALL ORDER BY min(stage_index), variant""",
        )
        taught = {
            (r["stage"], r["value"]): r["share"]
            for r in _rows(
                con,
                f"""WITH t AS (SELECT stage, count(*) OVER (PARTITION BY stage) AS n,
                                      unnest(list_distinct("values")) AS value
                               FROM read_parquet({data}))
                    SELECT stage, value, count(*) / any_value(n) AS share FROM t
                    GROUP BY stage, value""",
            )
        }
        sourced = _rows(
            con,
            f"""WITH t AS (SELECT stage, unnest("values") AS value,
                                  unnest(value_sources) AS source
                           FROM read_parquet({data}))
                SELECT stage, value, count(*) FILTER (WHERE source = 'detected') AS detected,
                       count(*) FILTER (WHERE source <> 'detected') AS assigned
                FROM t GROUP BY ALL""",
        )
        fallbacks = (
            _rows(
                con,
                f"""SELECT stage, coalesce(fallback_reason, 'none (accepted)') AS fallback_reason,
                           count(*) AS records,
                           round(count(*) / sum(count(*)) OVER (PARTITION BY stage), 4) AS share
                    FROM read_parquet({lineage})
                    WHERE stage IN ({", ".join(sql_literal(s) for s in STAGES)})
                    GROUP BY stage, fallback_reason
                    ORDER BY stage, records DESC, fallback_reason""",
            )
            if lineage_file.exists()
            else []
        )
        versions = (
            _rows(
                con,
                f"""SELECT stage, teacher_backend, teacher_model, tried_model, prompt_id,
                           left(prompt_sha, 16) AS prompt_sha, count(*) AS records,
                           count(*) FILTER (WHERE cache_hit) AS cache_hits,
                           string_agg(DISTINCT run_id, ' ' ORDER BY run_id) AS dagster_runs
                    FROM read_parquet({lineage})
                    WHERE stage IN ({", ".join(sql_literal(s) for s in STAGES)})
                    GROUP BY ALL
                    ORDER BY stage, records DESC, teacher_backend, teacher_model, tried_model,
                             prompt_id, prompt_sha, dagster_runs""",
            )
            if lineage_file.exists()
            else []
        )
        samples = _rows(
            con,
            f"""SELECT * FROM (
                    SELECT stage, stage_index, position, doc_id, shard, source_doc_id, variant,
                           difficulty, "values", text,
                           row_number() OVER (PARTITION BY stage ORDER BY md5(doc_id)) AS pick
                    FROM read_parquet({data}))
                WHERE pick <= {SAMPLES_PER_STAGE} ORDER BY stage_index, position""",
        )
        chains = {}
        if lineage_file.exists() and samples:
            keys = " OR ".join(
                f"(shard = {sql_literal(s['shard'])} AND source_doc_id = "
                f"{sql_literal(s['source_doc_id'])})"
                for s in samples
            )
            for row in _rows(
                con,
                f"""SELECT shard, source_doc_id, stage, teacher_backend, teacher_model,
                           prompt_id, left(prompt_sha, 12) AS prompt_sha, seed, attempts,
                           fallback_reason, cache_hit, run_id, file, line
                    FROM read_parquet({lineage}) WHERE {keys} ORDER BY stage_index""",
            ):
                chains.setdefault((row["shard"], row["source_doc_id"]), []).append(row)
    finally:
        con.close()

    values = sorted({v for _, v in taught} | set(manifest["stages"][0]["value_coverage"]))
    detected = {(r["stage"], r["value"]): r["detected"] for r in sourced}
    assigned = {(r["stage"], r["value"]): r["assigned"] for r in sourced}
    counts = {s["name"]: s["records"] for s in manifest["stages"]}
    shards = manifest["input_shards"]
    records_in = sum(s.get("records_in", 0) for s in shards)
    quarantined: dict[str, int] = {}
    for shard in shards:
        for reason, n in shard.get("quarantined_by_reason", {}).items():
            quarantined[reason] = quarantined.get(reason, 0) + n
    title = f"Audit report: publication {info.get('id', publication.name)}"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2 id='summary'>Summary</h2>",
        _table(
            [
                {"what": "publication", "value": info.get("id", publication.name)},
                {"what": "published at", "value": info.get("published_at")},
                {"what": "records", "value": manifest["records"]},
                {"what": "tokens", "value": manifest.get("tokens")},
                {"what": "approximate tokens", "value": manifest.get("approx_tokens")},
                {"what": "input shards", "value": len(shards)},
                {"what": "records read", "value": records_in},
                {"what": "quarantined at ingest", "value": sum(quarantined.values())},
                {"what": "left-out shards", "value": len(manifest.get("left_out_shards", []))},
                {"what": "withdrawn documents", "value": len(manifest.get("withdrawals", []))},
                {"what": "settings sha256", "value": manifest.get("config_sha")},
                {"what": "codex sha256", "value": manifest.get("codex_sha")},
                {"what": "identity sha256", "value": manifest.get("identity_sha")},
                {"what": "publishing Dagster run", "value": info.get("run_id")},
            ]
        ),
        "<h2 id='records'>Records per stage and variant</h2>",
        _table(per_variant),
        "<h2 id='difficulty'>Difficulty per stage</h2>",
        _table(
            [
                {"stage": s["name"], "records": s["records"], **s["difficulty_quantiles"]}
                for s in manifest["stages"]
            ],
            ["stage", "records", "p10", "p50", "p90"],
        ),
        _plot(publication, "plots/difficulty_by_stage.png"),
        "<h2 id='values'>Value coverage per stage</h2>",
        _heatmap("Share of the stage's records teaching each value", taught, stage_names, values),
        _heatmap(
            "Detected in the source (share of the stage's records)",
            {k: n / counts[k[0]] for k, n in detected.items() if counts.get(k[0])},
            stage_names,
            values,
        ),
        _heatmap(
            "Assigned by the curriculum (share of the stage's records)",
            {k: n / counts[k[0]] for k, n in assigned.items() if counts.get(k[0])},
            stage_names,
            values,
        ),
        _plot(publication, "plots/value_coverage.png"),
        _plot(publication, "plots/stage_mix.png"),
        "<h2 id='fallbacks'>Fallback rates by stage and reason</h2>",
        _table(fallbacks),
        "<h2 id='quarantine'>Quarantine rates by reason</h2>",
        _table(
            [
                {"reason": r, "records": n, "share_of_records_read": n / records_in}
                for r, n in sorted(quarantined.items(), key=lambda kv: -kv[1])
            ]
            if records_in
            else []
        ),
        _table(
            [
                {
                    "shard": s["shard"],
                    "records_in": s.get("records_in"),
                    "kept": s.get("kept"),
                    "quarantined": s.get("quarantined"),
                    "file_sha256": s.get("content_sha"),
                }
                for s in shards
            ]
        ),
        "<h2 id='versions'>Prompt and model versions</h2>",
        _table(versions),
        _table(manifest.get("prompts", [])),
        "<h2 id='left-out'>Left-out shards and withdrawals</h2>",
        _table(manifest.get("left_out_shards", []), ["shard", "reason", "detail"]),
        _table(manifest.get("withdrawals", [])),
        "<h2 id='samples'>Sampled records per stage, with their lineage</h2>",
    ]
    for sample in samples:
        parts += [
            f"<h3>{html.escape(sample['stage'])}: position {sample['position']}, "
            f"{html.escape(sample['doc_id'])}</h3>",
            f"<p>difficulty {sample['difficulty']:.3f}; values "
            f"{html.escape(', '.join(sample['values'] or []))}</p>",
            f"<div class='text'>{html.escape(_excerpt(sample['text']))}</div>",
            _table(chains.get((sample["shard"], sample["source_doc_id"]), [])),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(publication: Location, out_file: Location | None = None) -> Location:
    """Write the report (default: the publication's `audit/report.html`); returns its path."""
    out_file = out_file or publication / REPORT_FILE
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(build_report(publication), encoding="utf-8")
    return out_file
