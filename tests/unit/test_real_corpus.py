"""The committed real corpus (tests/data/real_corpus) and its hand labels stay consistent."""

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raising_dagster.config import load_codex
from raising_dagster.stages.ingest import read_shard

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "real_corpus"
LABELS = DATA / "value_labels.jsonl"
BUILD_SCRIPT = DATA.parent.parent / "scripts" / "build_real_corpus.py"
SHARDS = sorted(CORPUS.glob("shard-*.jsonl.gz"))
LABEL_KINDS = {"quotation", "poem", "joke", "dictionary", "techdoc", "qa", "story", "article"}
LABEL_KINDS |= {"code", "other"}
OTHER_LANGUAGE_SOURCES = {"fortunes-de": "de", "fortunes-ru": "ru", "fortunes-es": "es"}


def raw_records(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def documented_shard_counts() -> dict[str, int]:
    """The per-shard record counts SOURCES.md states."""
    text = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    return {
        m[1]: int(m[2])
        for m in re.finditer(r"^\| `(shard-\d+\.jsonl\.gz)` \| (\d+) \|", text, re.M)
    }


def test_every_real_shard_is_read_whole_by_ingest() -> None:
    counts = documented_shard_counts()
    assert len(SHARDS) == 8
    assert sorted(counts) == [p.name for p in SHARDS]
    for path in SHARDS:
        read = read_shard(path)
        assert read.quarantine.height == 0, read.quarantine.to_dicts()[:3]
        assert read.records_in == read.docs.height == counts[path.name]


def test_real_records_carry_ids_sources_licenses_and_no_kind() -> None:
    ids = []
    for path in SHARDS:
        for record in raw_records(path):
            assert set(record) in (
                {"id", "text", "source", "license"},
                {"id", "title", "text", "source", "license"},
            )
            assert record["text"].strip() and record["source"] and record["license"]
            ids.append(record["id"])
    assert len(ids) == len(set(ids))


def test_value_labels_match_the_corpus_and_the_codex() -> None:
    corpus = {
        r["id"]: (p.name.removesuffix(".jsonl.gz"), r) for p in SHARDS for r in raw_records(p)
    }
    names = load_codex().names
    labels = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    assert len(labels) == len({label["id"] for label in labels}) >= 250
    for label in labels:
        shard, record = corpus[label["id"]]
        assert label["shard"] == shard and label["text"] == record["text"]
        assert label["values"] == [n for n in names if n in label["values"]], label["id"]
        assert label["kind"] in LABEL_KINDS and label["kind_guess"] == label["kind"]
        package = record["source"].split(":", 1)[0]
        assert label.get("lang") == OTHER_LANGUAGE_SOURCES.get(package), label["id"]


def installed_version(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def test_rebuild_from_the_same_packages_is_byte_identical(tmp_path: Path) -> None:
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z0-9.-]+)` \| (\S+) \|", sources, re.M)
    wanted = {name: version for name, version in rows if not name.startswith("shard-")}
    python = re.search(r"this build: Python (\S+)", sources)
    assert wanted and python
    have = {package: installed_version(package) for package in wanted}
    here = ".".join(map(str, sys.version_info[:3]))
    if have != wanted or here != python[1]:
        pytest.skip(
            f"rebuild needs the Debian packages and Python of SOURCES.md ({wanted}, Python "
            f"{python[1]}); here {have}, Python {here}"
        )
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(tmp_path)], check=True, capture_output=True
    )
    for path in [*SHARDS, CORPUS / "SOURCES.md"]:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
