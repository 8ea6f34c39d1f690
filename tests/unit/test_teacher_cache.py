"""The generation cache: a re-run makes no teacher call and gives identical output."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from raising_dagster.config import load_identity
from raising_dagster.teacher.base import Rewrite, RewriteRequest, Stage, ValueRef
from raising_dagster.teacher.cache import CachedTeacher, GenerationCache
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
    assert (stats["stage"], stats["entries"], stats["keys"], stats["files"]) == (
        "first_person",
        6,
        6,
        2,
    )
    report = cache.prune(dry_run=True)
    assert report == {"before": 6, "after": 6, "files_before": 2} and len(cache._files()) == 2
    cache.prune()
    assert len(cache._files()) == 1 and cache.stats()[0]["entries"] == 6
    assert cache.prune(keep_prompt_shas={"other"})["after"] == 0 and cache.stats() == []
    teacher.rewrite("first_person", requests(2))
    assert cache.prune(older_than=timedelta(days=1))["after"] == 2
    assert cache.prune(older_than=timedelta(0))["after"] == 0


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
