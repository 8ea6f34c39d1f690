"""Speed work must not change a byte (issue 12): `raising run` on a fixed corpus publishes files
whose SHA-256 were recorded before the optimizations (tests/data/published_sha256.json), and a
run with `--parallel` publishes the same bytes as a serial one.

The corpus mixes real text (two real-corpus shards: other scripts, control characters, long
documentation pages), the bundled sample corpus (a `.txt` shard), seeded synthetic shards and a
hostile shard (broken lines of every kind). Files are compared byte for byte, except that Parquet
is compared as its rows and that run ids, publication ids and times, the run's folders and the
hashes of files holding them are replaced by placeholders (they differ between any two runs).
An intended change of the outputs re-records the
hashes: `RAISING_RECORD_HASHES=1 pytest tests/dagster/test_published_bytes.py`, and says why in
the commit.
"""

import hashlib
import json
import os
import re
import shutil
from importlib import resources
from pathlib import Path

import polars as pl
import pytest

from raising_dagster.stages.synth import write_synth_corpus
from tests.conftest import raising_cli, write_jsonl

ROOT = Path(__file__).parents[2]
RECORDED = ROOT / "tests" / "data" / "published_sha256.json"
CODEX = ROOT / "benchmarks" / "zero_share_codex.yaml"
REAL_SHARDS = ("shard-01.jsonl.gz", "shard-03.jsonl.gz")
# Every per-shard and curriculum file a run writes, besides training_ready/ (whole).
HASHED = (
    "raw_docs",
    "scored_docs",
    "first_person_docs",
    "experiential_docs",
    "social_docs",
    "quarantine",
    "ordered_docs",
)
HOSTILE = [
    {"id": "ok-1", "text": "Honesty is telling the truth. Write to a.b@example.com for more."},
    "{broken json",
    "",
    '"just a string"',
    {"id": "no-text", "title": "nothing"},
    {"id": "blank", "text": " \u00a0\u200b "},
    {"id": "ok-1", "text": "A duplicate id, quarantined."},
    {"id": "typed", "text": 42},
    {"id": "bom", "text": "\ufeffA kind neighbour\u0007 helped\r\nme carry the bags.\u202e"},
    {"id": "caf\u00e9", "title": "Caf\u00e9 \u043c\u0438\u0440", "text": "Un caf\u00e9 honnête."},
    '{"id": "bad-surrogate", "text": "lone \\ud800 surrogate, told the truth"}',
    {"id": "nested", "text": "Be fair.", "meta": {"source": "x"}, "score": 0.5},
]


def reference_landing(folder: Path) -> Path:
    """The fixed corpus the recorded hashes are of."""
    folder.mkdir(parents=True)
    for name in REAL_SHARDS:
        shutil.copy(ROOT / "tests" / "data" / "real_corpus" / name, folder / name)
    sample = resources.files("raising_dagster") / "sample_corpus"
    for entry in sample.iterdir():
        (folder / entry.name).write_bytes(entry.read_bytes())
    for path in write_synth_corpus(folder / "synth", 240, 2, seed=12, mean_words=300):
        path.rename(folder / path.name)
    (folder / "synth").rmdir()
    write_jsonl(folder / "hostile.jsonl", HOSTILE)
    return folder


def _raise(landing: Path, out: Path, *flags: str) -> None:
    args = ["--landing", str(landing), "--out", str(out), "--teacher", "template"]
    result = raising_cli(
        "run", *args, "--codex", str(CODEX), *flags, home=out / "dagster_home", timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


# What differs between two runs of the same corpus by design: run ids, publication ids and times,
# the run's folders, and the hashes of files that hold them (the files they name are hashed too).
_RUN_IDENTITY = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<run>"),
    (re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}"), "<publication>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha>"),
]


def _canonical(path: Path, folders: dict[str, Path]) -> bytes:
    """A file's bytes, or for Parquet, JSON, YAML, Markdown and HTML its content as text with
    the run's identity (above) and folders replaced by placeholders."""
    if path.suffix == ".parquet":
        text = pl.read_parquet(path).write_ndjson()
    elif path.suffix in {".json", ".yaml", ".md", ".html"}:
        text = path.read_text(encoding="utf-8")
    else:
        return path.read_bytes()
    for name, folder in folders.items():
        text = text.replace(str(folder), f"<{name}>")
    for pattern, placeholder in _RUN_IDENTITY:
        text = pattern.sub(placeholder, text)
    return text.encode()


def published_hashes(out: Path, landing: Path) -> dict[str, str]:
    """SHA-256 of every file under training_ready/ and of each asset's files (canonical, see
    `_canonical`), by relative path."""
    files = [p for p in (out / "training_ready").rglob("*") if p.is_file()]
    for folder in HASHED:
        files += [p for p in (out / folder).rglob("*") if p.is_file()]
    folders = {"out": out, "landing": landing, "root": ROOT}
    return {
        str(p.relative_to(out)): hashlib.sha256(_canonical(p, folders)).hexdigest()
        for p in sorted(files)
    }


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_landing(tmp_path_factory.mktemp("reference") / "landing")


@pytest.fixture(scope="module")
def serial(landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("serial") / "out"
    _raise(landing, out)
    return published_hashes(out, landing)


@pytest.mark.slow
def test_published_files_match_the_hashes_recorded_before_optimizing(
    serial: dict[str, str],
) -> None:
    if os.environ.get("RAISING_RECORD_HASHES") == "1":
        RECORDED.write_text(json.dumps(serial, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert any(k.startswith("training_ready/tokens/") for k in recorded)
    changed = sorted(k for k in recorded.keys() & serial.keys() if recorded[k] != serial[k])
    assert changed == [], f"changed bytes: {changed}"
    assert serial.keys() == recorded.keys()


@pytest.mark.slow
def test_parallel_run_publishes_the_same_bytes_as_a_serial_one(
    landing: Path, serial: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _raise(landing, out, "--parallel", "3")
    assert published_hashes(out, landing) == serial
