"""The generation cache: a re-run makes no teacher call and gives identical output."""

import multiprocessing
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from raising_dagster.config import load_identity
from raising_dagster.teacher.base import Rewrite, RewriteRequest, Stage, ValueRef
from raising_dagster.teacher.cache import CACHE_SCHEMA, CachedTeacher, GenerationCache
from raising_dagster.teacher.template import TemplateTeacher


class Counting(TemplateTeacher):
    """The template teacher, counting the documents it is asked to rewrite."""

    def __init__(self, fail: str | None = None) -> None:
        super().__init__(load_identity())
        self.asked = 0
        self.fail = fail

    def rewrite(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]:
        self.asked += len(requests)
        out = super().rewrite(stage, requests)
        return [replace(o, lineage=replace(o.lineage, fallback_reason=self.fail)) for o in out]


def requests(n: int, seed: int = 0) -> list[RewriteRequest]:
    values = (ValueRef("honesty", "telling the truth"),)
    return [
        RewriteRequest(f"d{i}", f"Text {i}: a fox saw grapes.", "fable", None, values, seed + i)
        for i in range(n)
    ]


def test_second_run_is_answered_from_the_cache(tmp_path: Path) -> None:
    inner = Counting()
    first = CachedTeacher(inner, GenerationCache(tmp_path))
    out1 = first.rewrite("first_person", requests(5))
    assert (inner.asked, first.hits, first.misses) == (5, 0, 5)
    again = CachedTeacher(inner, GenerationCache(tmp_path))  # a new run, same store
    out2 = again.rewrite("first_person", requests(5))
    assert (inner.asked, again.hits, again.misses) == (5, 5, 0)
    assert [o.text for o in out2] == [o.text for o in out1]
    assert all(o.lineage.cache_hit for o in out2) and not any(o.lineage.cache_hit for o in out1)
    assert [(o.lineage.prompt_sha, o.lineage.seed, o.lineage.attempts) for o in out2] == [
        (o.lineage.prompt_sha, o.lineage.seed, o.lineage.attempts) for o in out1
    ]


def test_key_covers_stage_seed_and_input(tmp_path: Path) -> None:
    inner = Counting()
    teacher = CachedTeacher(inner, GenerationCache(tmp_path))
    teacher.rewrite("first_person", requests(3))
    teacher.rewrite("experiential", requests(3))  # another stage
    teacher.rewrite("first_person", requests(3, seed=100))  # other seeds
    changed = [replace(r, text=r.text + "!") for r in requests(3)]
    teacher.rewrite("first_person", changed)  # other inputs
    assert inner.asked == 12
    mixed = requests(2) + changed[2:] + [replace(requests(4)[3], kind="news")]
    out = teacher.rewrite("first_person", mixed)
    assert inner.asked == 13 and [o.lineage.cache_hit for o in out] == [True, True, True, False]


def test_backend_errors_are_not_cached(tmp_path: Path) -> None:
    inner = Counting(fail="error:http_503")
    teacher = CachedTeacher(inner, GenerationCache(tmp_path))
    teacher.rewrite("social", requests(2))
    teacher.rewrite("social", requests(2))
    assert inner.asked == 4


def test_stats_and_prune(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path)
    teacher = CachedTeacher(Counting(), cache)
    teacher.rewrite("first_person", requests(3))
    teacher.rewrite("first_person", requests(3, seed=10))
    (stats,) = cache.stats()
    assert (stats["stage"], stats["entries"], stats["keys"], stats["fallbacks"]) == (
        "first_person",
        6,
        6,
        0,
    )
    assert stats["bytes"] > 0 and stats["prompts"] == "first_person/template.v2"
    assert cache.prune(dry_run=True)["after"] == 6
    assert cache.prune(keep_prompt_shas={"other"}, dry_run=True)["after"] == 0
    assert cache.stats()[0]["entries"] == 6  # a dry run drops nothing
    assert cache.prune(keep_prompt_shas={"other"})["after"] == 0 and cache.stats() == []
    teacher.rewrite("first_person", requests(2))
    assert cache.prune(older_than=timedelta(days=1))["after"] == 2
    assert cache.prune(older_than=timedelta(0))["after"] == 0
    CachedTeacher(Counting(fail="invalid:too_short"), cache).rewrite("social", requests(2))
    teacher.rewrite("social", requests(3, seed=50))
    assert cache.prune(drop_fallbacks=True) == {"before": 5, "after": 3, "files_before": 2}


def _rows(start: int, n: int, stage: str = "first_person") -> list[dict]:
    return [
        {
            "key": f"k{i}",
            "stage": stage,
            "text": f"text {i}",
            "seed": i,
            "attempts": 1,
            "created_at": datetime.now(UTC),
        }
        for i in range(start, start + n)
    ]


def test_many_batches_keep_one_database_per_stage(tmp_path: Path) -> None:
    """Lookups must not slow down with the number of batches stored: no file per batch."""
    cache = GenerationCache(tmp_path)
    for batch in range(30):
        cache.put_many("first_person", _rows(batch * 10, 10))
    cache.put_many("social", _rows(0, 5, "social"))
    stores = {p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith("-wal")}
    assert stores - {"first_person.sqlite3-shm", "social.sqlite3-shm"} == {
        "first_person.sqlite3",
        "social.sqlite3",
    }
    found = cache.get_many("first_person", ["k0", "k155", "k299", "k300", "k0"])
    assert sorted(found) == ["k0", "k155", "k299"]
    assert found["k155"]["text"] == "text 155" and found["k155"]["seed"] == 155
    assert found["k0"]["created_at"].tzinfo is not None
    assert cache.get_many("experiential", ["k0"]) == {}  # no such stage: nothing created
    assert not (tmp_path / "experiential.sqlite3").exists()


def test_lookup_is_an_index_search(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path)
    cache.put_many("first_person", _rows(0, 50))
    with sqlite3.connect(cache.database("first_person")) as con:
        plan = con.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM entries WHERE key IN (?, ?)", ["k1", "k2"]
        ).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "SEARCH" in details and "SCAN" not in details, details


def test_a_new_schema_column_reaches_an_existing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = GenerationCache(tmp_path)
    cache.put_many("first_person", _rows(0, 2))
    monkeypatch.setitem(CACHE_SCHEMA, "written_by", pl.String())
    later = GenerationCache(tmp_path)  # a later version of the code, same store
    later.put_many("first_person", [{**_rows(2, 1)[0], "written_by": "template"}])
    found = later.get_many("first_person", ["k0", "k2"])
    assert (found["k0"]["written_by"], found["k2"]["written_by"]) == (None, "template")


def test_legacy_parquet_entries_are_imported_once(tmp_path: Path) -> None:
    legacy = tmp_path / "first_person" / "part-0123.parquet"
    legacy.parent.mkdir()
    frame = pl.DataFrame(_rows(0, 3), schema_overrides={"created_at": pl.Datetime("us", "UTC")})
    frame.write_parquet(legacy)
    cache = GenerationCache(tmp_path)
    assert cache.stats()[0]["entries"] == 3
    assert not legacy.exists() and not legacy.parent.exists()
    assert sorted(cache.get_many("first_person", ["k0", "k2", "k9"])) == ["k0", "k2"]


def _write_batches(root: str, worker: int, batches: int) -> None:
    cache = GenerationCache(Path(root))
    for b in range(batches):
        cache.put_many("social", _rows(worker * 100_000 + b * 20, 20, "social"))
        cache.get_many("social", [f"k{worker * 100_000}", "missing"])


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Two runs (processes) on different partitions write the same stage at once."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_batches, args=(str(tmp_path), w, 40)) for w in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    cache = GenerationCache(tmp_path)
    keys = [f"k{w * 100_000 + i}" for w in range(2) for i in range(40 * 20)]
    assert len(cache.get_many("social", keys)) == 1600
    assert cache.stats()[0]["entries"] == 1600


def test_cache_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from raising_dagster.cli import main

    CachedTeacher(Counting(), GenerationCache(tmp_path / "teacher_cache")).rewrite(
        "social", requests(3)
    )
    runner = CliRunner()
    stats = runner.invoke(main, ["cache", "stats", "--store", str(tmp_path)])
    assert stats.exit_code == 0 and "social" in stats.output and "3 entries" in stats.output
    prune = runner.invoke(main, ["cache", "prune", "--store", str(tmp_path), "--stale"])
    assert prune.exit_code == 0 and "kept 0 of 3" in prune.output  # template entries are stale
