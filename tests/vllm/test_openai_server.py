"""The openai backend against a real vLLM OpenAI server (tiny model) started on 127.0.0.1."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import polars as pl
import pytest

from raising_dagster.config import TeacherSettings, load_identity, load_settings, sha256_hex
from raising_dagster.schema import RAW_SCHEMA, REWRITE_SCHEMA
from raising_dagster.stages import rewrite
from raising_dagster.stages.score import score_docs
from raising_dagster.teacher.llm import Call
from raising_dagster.teacher.openai import OpenAITeacher

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
TEXT = "A fox saw grapes hanging high on a vine. He could not reach them and said they were sour."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(tiny_model: Path, log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A vLLM OpenAI server for the tiny model on a free port: its /v1 URL and process."""
    port = free_port()
    log = log_path.open("w")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024"]
    cmd += ["--enforce-eager", "--dtype", "float32", "--served-model-name", "tiny"]
    cmd += ["--no-enable-chunked-prefill"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"server exited, see {log.name}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"server not healthy in 180 s, see {log.name}"
            time.sleep(1)
        yield f"{url}/v1", process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tiny_model, tmp_path_factory.mktemp("server") / "server.log") as (url, _):
        yield url


def teacher(url: str, **overrides: object) -> OpenAITeacher:
    settings = TeacherSettings(
        **{
            "backend": "openai",
            "model": "tiny",
            "base_url": url,
            "max_model_len": 1024,
            "max_attempts": 2,
            "mode": "rewrite",
            **overrides,
        }
    )
    return OpenAITeacher(settings, load_identity())


def test_one_stage_end_to_end(server: str) -> None:
    raw = pl.DataFrame(
        [
            {
                "doc_id": f"d{i}",
                "shard": "s",
                "line": i,
                "title": "The Fox",
                "kind": "fable",
                "text": f"{TEXT} ({i})",
                "meta": "{}",
                "input_sha": sha256_hex(TEXT),
            }
            for i in range(4)
        ],
        schema=RAW_SCHEMA,
    )
    settings = load_settings()
    scored = score_docs(raw, settings.codex, settings.scoring, settings.curriculum)
    out = rewrite.first_person(raw, scored, teacher(server), settings.codex, seed=1)
    assert out.columns == list(REWRITE_SCHEMA) and out.height == 4
    assert out["doc_id"].to_list() == [f"d{i}" for i in range(4)]
    # Noise never validates: every record says who was tried, that it fell back, after every
    # attempt, and that the template wrote it.
    assert set(out["tried_backend"]) == {"openai"} and set(out["tried_model"]) == {"tiny"}
    assert set(out["teacher_backend"]) == {"template"}
    assert out["attempts"].to_list() == [2] * 4
    assert out["fallback_reason"].is_not_null().all()
    assert set(out["prompt_id"]) == {"first_person/template.v2"}


def test_experience_mode_continues_the_started_answer_through_the_server(server: str) -> None:
    t = teacher(server, mode="experience")
    prefill = "Reading this, I noticed"
    messages = [{"role": "user", "content": "Tell me about the fox."}]
    (completion,) = t._generate([Call(messages, {"temperature": 1.0}, 3, 12, prefill=prefill)])
    assert completion.error is None and completion.n_tokens > 0
    # the server continued the assistant message instead of answering a new turn
    assert not completion.text.startswith(prefill)


def test_seeded_requests_repeat_through_the_server(server: str) -> None:
    t = teacher(server)
    messages = [{"role": "user", "content": "Tell me about the fox."}]
    batch = [Call(messages, {"temperature": 1.0}, seed, 12) for seed in (1, 2, 1)]
    first, second, third = t._generate(batch)
    assert first.error is None and first.n_tokens > 0
    assert first.text == third.text and first.text != second.text


def test_two_servers_share_the_requests_and_one_stopping_costs_none(
    server: str, tiny_model: Path, tmp_path: Path
) -> None:
    """teacher.base_urls over two real servers: both serve; the second stops mid-run, is ejected,
    and every request is answered by the first."""
    messages = [{"role": "user", "content": "Tell me about the fox."}]
    batch = [Call(messages, {"temperature": 1.0}, seed, 8) for seed in range(12)]
    with serve(tiny_model, tmp_path / "second.log") as (second, process):
        t = teacher(
            server,
            base_urls=[server, second],
            concurrency=2,
            eject_after_failures=1,
            eject_s=120,
            max_retries=3,
            retry_budget=1.0,
        )
        assert all(c.error is None and c.n_tokens > 0 for c in t._generate(batch))
        first = t.endpoint_stats()
        assert all(s["requests"] >= 3 and s["errors"] == 0 for s in first.values()), first
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        assert all(c.error is None and c.n_tokens > 0 for c in t._generate(batch))
        after = t.endpoint_stats()
        assert after[second]["ejections"] == 1 and after[second]["errors"] >= 1
        assert after[server]["requests"] - first[server]["requests"] >= len(batch)
