"""The published corpus as training teams load it: Hugging Face `datasets` (streaming, in order,
whole or one phase) and Megatron-format readers, one `.bin/.idx` prefix per phase, in order."""

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from dagster import DagsterInstance

from raising_dagster.resources import RaisingResource
from raising_dagster.runner import run_pipeline
from raising_dagster.stages.tokenize import load_tokenizer, read_tokenized
from tests.conftest import DEFINITION, FABLE, HONESTY_CODEX, raw_byte_encoder, write_jsonl

CONTROL_TOKENS = (
    "Chat logs mark turns with <|im_start|>user and <|im_end|>; GPT-2 ends documents with "
    "<|endoftext|>. Being honest about such markers means printing them as they are."
)


def _publish(root: Path, settings_yaml: str, docs: list[dict]) -> Path:
    landing = root / "landing"
    landing.mkdir(parents=True)
    write_jsonl(landing / "alpha.jsonl", docs)
    for shard in ("beta", "gamma"):  # retold, not copied: exact copies across shards are dropped
        retold = [{**d, "id": f"{d['id']}-{shard}", "text": f"{d['text']} ({shard})"} for d in docs]
        write_jsonl(landing / f"{shard}.jsonl", retold)
    config = root / "settings.yaml"
    config.write_text(settings_yaml, encoding="utf-8")
    store = root / "store"
    raising = RaisingResource(
        config_file=str(config),
        landing_dir=str(landing),
        store_dir=str(store),
        codex_path=str(HONESTY_CODEX),
    )
    with DagsterInstance.ephemeral() as instance:
        report = run_pipeline(raising, instance)
    assert report.published, report.failures
    return store / "training_ready"


DOCS = [
    {"id": "fable-1", "title": "The Fox and the Grapes", "kind": "fable", "text": FABLE},
    {"id": "def-1", "title": "Honesty", "kind": "definition", "text": DEFINITION},
    {"id": "ctl-1", "title": "Markers", "kind": "article", "text": CONTROL_TOKENS},
    {"id": "def-2", "title": "Truth", "kind": "definition", "text": DEFINITION + " Always."},
]
STEP_ONE_RECORD_A_FILE = "curriculum:\n  records_per_file: 1\n  dilemma_stage: null\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Step pacing, one record a Parquet file (so the files outnumber ten)."""
    return _publish(tmp_path_factory.mktemp("step"), STEP_ONE_RECORD_A_FILE, DOCS)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _records(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "data" / "*.parquet").sort("position")


def test_manifest_lists_one_prefix_per_stage_in_order(corpus: Path) -> None:
    manifest = _manifest(corpus)
    records = _records(corpus)
    phases = manifest["phases"]
    nonempty = [s["name"] for s in manifest["stages"] if s["records"]]
    assert [p["stages"] for p in phases] == [[name] for name in nonempty]  # step: one per stage
    assert [p["name"] for p in phases] == [f"phase-{i:02d}-{n}" for i, n in enumerate(nonempty)]
    assert manifest["tokenized"]["prefixes"] == [f"tokens/{p['name']}" for p in phases]
    assert manifest["tokenized"]["whole_corpus_prefix"] is None
    assert "loses the order" in manifest["order"]
    assert phases[0]["first_position"] == 0 and phases[-1]["last_position"] == records.height - 1
    for before, after in itertools.pairwise(phases):
        assert after["first_position"] == before["last_position"] + 1
    assert len(manifest["files"]) == records.height > 10
    for phase in phases:
        rows = records.filter(pl.col("position").is_between(*_range(phase)))
        assert rows["stage"].unique().to_list() == phase["stages"]
        assert phase["records"] == rows.height
        files = [f for f in manifest["files"] if f["phase"] == phase["index"]]
        assert [f["path"] for f in files] == phase["files"]
    assert sum(p["tokens"] for p in phases) == manifest["tokens"]


def _range(phase: dict) -> tuple[int, int]:
    return phase["first_position"], phase["last_position"]


def test_hf_datasets_streams_the_corpus_in_curriculum_order(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    records = _records(corpus)
    whole = load_dataset(str(corpus), split="train", streaming=True)
    streamed = [(r["position"], r["text"]) for r in whole]
    assert streamed == list(zip(records["position"], records["text"], strict=True))
    assert [p for p, _ in streamed] == list(range(records.height))
    # each phase is a config of its own, in the manifest's order
    for phase in _manifest(corpus)["phases"]:
        rows = load_dataset(str(corpus), phase["hf_config"], split="train", streaming=True)
        assert [r["position"] for r in rows] == list(range(_range(phase)[0], _range(phase)[1] + 1))
    # the Parquet files alone, without the card
    plain = load_dataset("parquet", data_dir=str(corpus), split="train", streaming=True)
    assert [r["position"] for r in plain] == list(range(records.height))


def test_dataset_card_declares_configs_in_order_license_and_order_note(corpus: Path) -> None:
    text = (corpus / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    manifest = _manifest(corpus)
    assert [c["config_name"] for c in header["configs"]] == [
        "default",
        *[p["hf_config"] for p in manifest["phases"]],
    ]
    assert header["configs"][0]["default"] is True
    assert header["license"] == "unknown" and header["language"] == ["en"]
    assert "## Do not shuffle" in text and manifest["order"] in text
    for prompt in manifest["prompts"]:
        assert prompt["prompt_id"] in text and prompt["prompt_sha"][:16] in text
    assert f"Records: {manifest['records']}; tokens: {manifest['tokens']}" in text


def test_each_prefix_holds_its_phase_and_the_only_eos_ids_are_separators(corpus: Path) -> None:
    manifest = _manifest(corpus)
    records = _records(corpus)
    tokenizer, _ = load_tokenizer(None)
    eos = manifest["tokenized"]["eos_id"]
    assert eos == tokenizer.token_to_id("<|endoftext|>")
    assert records["text"].str.contains("<|endoftext|>", literal=True).any()
    for phase in manifest["phases"]:
        sequences = read_tokenized(corpus / phase["megatron_prefix"])
        texts = records.filter(pl.col("position").is_between(*_range(phase)))["text"]
        assert len(sequences) == len(texts)
        flat = np.concatenate(sequences)
        assert (
            np.flatnonzero(flat == eos).tolist()
            == (np.cumsum([len(s) for s in sequences]) - 1).tolist()
        )
        for ids, text in zip(sequences, texts, strict=True):
            assert tokenizer.decode(ids[:-1].tolist(), skip_special_tokens=False) == text
        assert phase["tokens"] == len(flat)


def test_megatron_core_reads_every_phase_prefix(corpus: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        indexed = pytest.importorskip(
            "megatron.core.datasets.indexed_dataset",
            reason="megatron-core comes with the vllm extra (it needs torch)",
        )
    for phase in _manifest(corpus)["phases"]:
        prefix = corpus / phase["megatron_prefix"]
        ours = read_tokenized(prefix)
        theirs = indexed.IndexedDataset(str(prefix))
        assert len(theirs) == phase["records"] == len(ours)
        assert theirs.sequence_lengths.tolist() == [len(s) for s in ours]
        assert theirs.document_indices.tolist() == list(range(len(ours) + 1))
        for i, ids in enumerate(ours):
            assert theirs[i].tolist() == ids.tolist()


def test_mixing_pacing_gives_one_prefix_per_pacing_phase(tmp_path: Path) -> None:
    docs = [
        {"id": f"d{i}", "title": f"Honesty {i}", "kind": "definition", "text": text}
        for i, text in enumerate([DEFINITION, FABLE, DEFINITION + " Truly.", FABLE + " The end."])
    ]
    folder = _publish(tmp_path, "curriculum:\n  pacing: linear\n  initial_competence: 0.1\n", docs)
    manifest = _manifest(folder)
    records = _records(folder)
    phases = manifest["phases"]
    names = [s["name"] for s in manifest["stages"]]
    for phase in phases:
        rows = records.filter(pl.col("position").is_between(*_range(phase)))
        # stages present in phase k never go beyond k: the later ones may not appear yet
        assert max(names.index(s) for s in phase["stages"]) <= phase["index"]
        assert phase["records_by_stage"] == dict(
            rows.group_by("stage").len().sort("stage").iter_rows()
        )
        assert phase["name"].startswith(f"phase-{phase['index']:02d}-{phase['stages'][0]}")
    assert sum(p["records"] for p in phases) == records.height
    assert len(phases) > 1 and len(phases[-1]["stages"]) > 1  # stages mix in the later phases
    assert [len(read_tokenized(folder / p["megatron_prefix"])) for p in phases] == [
        p["records"] for p in phases
    ]


def test_corpus_carries_the_tokenizer_of_its_ids(corpus: Path) -> None:
    manifest = _manifest(corpus)
    folder = corpus / manifest["tokenized"]["tokenizer_files"]
    from tokenizers import Tokenizer

    carried = Tokenizer.from_file(str(folder / "tokenizer.json"))
    carried.encode_special_tokens = True
    phase = manifest["phases"][0]
    texts = _records(corpus).filter(pl.col("position").is_between(*_range(phase)))["text"]
    for ids, text in zip(read_tokenized(corpus / phase["megatron_prefix"]), texts, strict=True):
        assert carried.encode(text, add_special_tokens=False).ids == ids[:-1].tolist()
    transformers = pytest.importorskip("transformers", reason="transformers: the vllm extra")
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert hf.eos_token == manifest["tokenized"]["eos_token"]
    assert hf.eos_token_id == manifest["tokenized"]["eos_id"]


def test_an_encoder_that_disagrees_with_tokenizers_leaves_the_corpus_to_it(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _manifest(corpus)["tokenized"]["encoder"].startswith("tiktoken")
    wrong = raw_byte_encoder()
    monkeypatch.setattr("raising_dagster.stages.pack.fast_bpe", lambda tokenizer: wrong)
    again = _publish(tmp_path, STEP_ONE_RECORD_A_FILE, DOCS)
    tokenized = _manifest(again)["tokenized"]
    assert tokenized["encoder"].startswith("tokenizers (tiktoken and tokenizers differ on")
    assert tokenized["prefixes"] == _manifest(corpus)["tokenized"]["prefixes"]
    for prefix in tokenized["prefixes"]:  # every phase encoded again, as tiktoken would have
        for suffix in (".bin", ".idx"):
            assert (again / f"{prefix}{suffix}").read_bytes() == (
                corpus / f"{prefix}{suffix}"
            ).read_bytes()
