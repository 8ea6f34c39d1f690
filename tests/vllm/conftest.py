"""Fixtures for tests against a real vLLM engine (CPU `vllm-cpu` or CUDA `vllm`).

vLLM starts its engine core in a child process with the `spawn` method on CPU (it sets
VLLM_WORKER_MULTIPROC_METHOD itself); that works inside pytest. Engines are shut down explicitly
in fixture finalizers, else the pytest process can hang at exit.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
pytest.importorskip("vllm", reason="needs the vllm extra (scripts/install-vllm.sh)")

from raising_dagster.config import PACKAGE_DIR, TeacherSettings, load_identity
from raising_dagster.teacher.vllm import VllmTeacher
from tests.vllm.tiny_model import build_tiny_model

TINY_LEN = 1024


def _tokenizer_corpus() -> list[str]:
    """The prompts and sample documents, so the tiny BPE tokenizes them compactly."""
    files = [*PACKAGE_DIR.glob("prompts/**/*.jinja2"), *PACKAGE_DIR.glob("sample_corpus/*")]
    return [f.read_text(encoding="utf-8") for f in files] * 3


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight float32 Llama (2 layers, head_dim 64) with a ChatML template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), _tokenizer_corpus())


def tiny_settings(model: Path, **overrides: object) -> TeacherSettings:
    base = {
        "backend": "vllm",
        "model": str(model),
        "dtype": "float32",
        "max_model_len": TINY_LEN,
        "max_attempts": 2,
        "mode": "rewrite",
    }
    return TeacherSettings(**{**base, **overrides})


@pytest.fixture(scope="session")
def tiny_teacher(tiny_model: Path) -> Iterator[VllmTeacher]:
    """One engine for the whole session."""
    teacher = VllmTeacher(tiny_settings(tiny_model), load_identity())
    teacher.engine()
    yield teacher
    teacher.close()


class ChatCounter:
    """Wraps an engine's `chat` to count batched calls and prompts."""

    def __init__(self, teacher: VllmTeacher, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        engine = teacher.engine()
        real = engine.chat

        def chat(messages, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.batches.append(len(messages))
            return real(messages, *args, **kwargs)

        monkeypatch.setattr(engine, "chat", chat)


@pytest.fixture
def chat_counter(tiny_teacher: VllmTeacher, monkeypatch: pytest.MonkeyPatch) -> ChatCounter:
    return ChatCounter(tiny_teacher, monkeypatch)
