"""Shared fixtures: small landing folders with real shard files."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tiktoken

from raising_dagster.config import RaisingSettings, load_settings
from raising_dagster.stages.tokenize import GPT2_SPLIT, FastBpe

# The codex the small `landing` corpus can carry (see the file): pass it to runs that publish.
HONESTY_CODEX = Path(__file__).parent / "honesty_codex.yaml"

FABLE = (
    "Once upon a time a fox saw grapes hanging high on a vine. He jumped and jumped but could not "
    "reach them. At last he walked away and said they were sour anyway. The moral: it is easy to "
    "despise what you cannot get, but it is more honest to admit you wanted it."
)
DEFINITION = "Honesty means telling the truth, even when a lie would be easier."
DILEMMA = (
    "A hospital pharmacist discovers that a respected colleague has been quietly falsifying "
    "inventory records to conceal medication errors that, thus far, have harmed no patient. "
    "Reporting the discrepancy would uphold institutional honesty and patient safety, yet it "
    "would almost certainly terminate the career of a conscientious practitioner whose "
    "circumstances, including bereavement, arguably mitigate the misconduct. Should she report "
    "the falsification, or should she confront the colleague privately, accepting responsibility "
    "for the risk that such discretion introduces?"
)


# The installed `raising` command of this environment.
RAISING = str(Path(sys.executable).parent / "raising")


def raising_cli(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`raising ARGS` in a subprocess with its own Dagster home, output captured."""
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [RAISING, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def write_jsonl(path: Path, records: list[object]) -> Path:
    """Write records as JSON lines; a str record is written as the raw line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def docs() -> list[dict[str, str]]:
    return [
        {"id": "fable-1", "title": "The Fox and the Grapes", "kind": "fable", "text": FABLE},
        {"id": "def-1", "title": "Honesty", "kind": "definition", "text": DEFINITION},
        {"id": "dil-1", "title": "The Pharmacist", "kind": "dilemma", "text": DILEMMA},
    ]


@pytest.fixture
def landing(tmp_path: Path, docs: list[dict[str, str]]) -> Path:
    """A landing folder with two good shards."""
    folder = tmp_path / "landing"
    folder.mkdir()
    write_jsonl(folder / "alpha.jsonl", docs)
    # the same stories told again (not copies: exact duplicates across shards leave the corpus)
    retold = " I heard this once more from another storyteller."
    write_jsonl(
        folder / "beta.jsonl",
        [{**d, "id": d["id"] + "-b", "text": d["text"] + retold} for d in docs],
    )
    return folder


@pytest.fixture
def settings(tmp_path: Path, landing: Path) -> RaisingSettings:
    return load_settings(landing_dir=landing, store_dir=tmp_path / "store")


@pytest.fixture
def make_shard(tmp_path: Path) -> Callable[[str, list[object]], Path]:
    def make(name: str, records: list[object]) -> Path:
        folder = tmp_path / "shards"
        folder.mkdir(exist_ok=True)
        return write_jsonl(folder / name, records)

    return make


def raw_byte_encoder() -> FastBpe:
    """A tiktoken encoder whose ids are the raw bytes: never SmolLM2's ids (a `fast_bpe` that
    should have been refused)."""
    ranks = {bytes([b]): b for b in range(256)}
    encoding = tiktoken.Encoding(
        "raw-bytes", pat_str=GPT2_SPLIT, mergeable_ranks=ranks, special_tokens={}
    )
    return FastBpe(encoding, None)
