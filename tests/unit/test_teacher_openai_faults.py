"""The openai teacher against a fault-injecting HTTP server (timeouts, 429, 5xx, bad bodies)."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from raising_dagster.config import TeacherSettings, load_identity
from raising_dagster.teacher.base import RewriteRequest, ValueRef
from raising_dagster.teacher.openai import OpenAITeacher, TeacherUnavailable

TEXT = "A fox saw grapes hanging high on a vine and walked away, saying they were sour anyway."


class Faults:
    """What the server does: a queue of faults for the next requests, then `default`."""

    def __init__(self) -> None:
        self.queue: list[str] = []
        self.default = "ok"
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            return self.queue.pop(0) if self.queue else self.default


def make_handler(faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with faults.lock:
                faults.requests.append(body)
                faults.headers.append(dict(self.headers))
                faults.in_flight += 1
                faults.max_in_flight = max(faults.max_in_flight, faults.in_flight)
            try:
                self._answer(faults.next(), body)
            finally:
                with faults.lock:
                    faults.in_flight -= 1

        def _answer(self, fault: str, body: dict) -> None:
            time.sleep(0.02)
            if fault == "timeout":
                time.sleep(1.0)
                return
            if fault == "drop":
                self.connection.close()
                return
            if fault.isdigit():
                self._send(int(fault), b'{"error": "injected"}', {"Retry-After": "0"})
                return
            if fault == "malformed":
                self._send(200, b'{"choices": [{"mess')
                return
            if body["messages"][-1]["role"] == "assistant":  # continue a started answer
                text = " the fox lied to himself, and honesty starts with me."
            elif "Begin your answer with" in body["messages"][-1]["content"]:
                started = body["messages"][-1]["content"].rsplit('with: "', 1)[1][:-1]
                text = f"{started} the fox lied to himself, and honesty starts with me."
            else:
                document = body["messages"][-1]["content"].split("<document>\n")[1]
                document = document.split("\n</document>")[0]
                text = f"Today I read this (seed {body['seed']}): {document}"
            payload = {
                "choices": [
                    {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"completion_tokens": 20},
            }
            self._send(200, json.dumps(payload).encode())

        def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Faults]]:
    faults = Faults()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(faults))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", faults
    httpd.shutdown()
    httpd.server_close()


def teacher(url: str, **settings: object) -> OpenAITeacher:
    base = {
        "backend": "openai",
        "model": "fake",
        "base_url": url,
        "timeout_s": 0.5,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "api_key_env": "FAULTS_TEST_KEY",
        "mode": "rewrite",
    }
    return OpenAITeacher(TeacherSettings(**{**base, **settings}), load_identity())


def requests(n: int) -> list[RewriteRequest]:
    values = (ValueRef("honesty", "telling the truth"),)
    return [RewriteRequest(f"d{i}", TEXT, "fable", None, values, i) for i in range(n)]


def test_batch_in_order_with_key_from_env(
    server: tuple[str, Faults], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, faults = server
    monkeypatch.setenv("FAULTS_TEST_KEY", "sk-test")
    out = teacher(url, concurrency=3).rewrite("first_person", requests(8))
    assert [o.text.split("seed ")[1].split(")")[0] for o in out] == [str(i) for i in range(8)]
    assert all(o.lineage.fallback_reason is None and o.lineage.attempts == 1 for o in out)
    assert {h["Authorization"] for h in faults.headers} == {"Bearer sk-test"}
    assert faults.requests[0]["model"] == "fake" and "temperature" in faults.requests[0]
    assert faults.max_in_flight <= 3


@pytest.mark.parametrize("fault", ["429", "500", "503", "malformed", "timeout", "drop"])
def test_transient_faults_are_retried(server: tuple[str, Faults], fault: str) -> None:
    url, faults = server
    faults.queue = [fault, fault]
    out = teacher(url, concurrency=1).rewrite("first_person", requests(2))
    assert all(o.lineage.fallback_reason is None and o.lineage.attempts == 1 for o in out)
    assert len(faults.requests) == 4


def test_client_errors_are_not_retried_and_fall_back(server: tuple[str, Faults]) -> None:
    url, faults = server
    faults.default = "400"
    (out,) = teacher(url, max_attempts=2).rewrite("first_person", requests(1))
    assert (out.lineage.fallback_reason, out.lineage.attempts) == ("error:http_400", 2)
    assert out.lineage.prompt_id == "first_person/template.v2" and len(faults.requests) == 2


def test_persistent_errors_fail_the_attempt_then_a_new_seed_is_tried(
    server: tuple[str, Faults],
) -> None:
    url, faults = server
    faults.queue = ["500"] * 3  # all three tries of the first attempt
    (out,) = teacher(url, max_retries=2, retry_budget=10).rewrite("first_person", requests(1))
    assert (out.lineage.fallback_reason, out.lineage.attempts) == (None, 2)
    assert [r["seed"] for r in faults.requests][:3] == [0, 0, 0] and faults.requests[3]["seed"] != 0
    faults.queue = ["500"] * 3
    (out,) = teacher(url, max_retries=2, max_attempts=1).rewrite("first_person", requests(1))
    assert (out.lineage.fallback_reason, out.lineage.attempts) == ("error:http_500", 1)


def test_spent_retry_budget_raises(server: tuple[str, Faults]) -> None:
    url, faults = server
    faults.default = "503"
    with pytest.raises(TeacherUnavailable, match="retry budget"):
        teacher(url, max_retries=5, retry_budget=0.5).rewrite("first_person", requests(4))
    assert len(faults.requests) <= 4 + int(0.5 * 4) + 5


def test_no_key_means_no_authorization_header(server: tuple[str, Faults]) -> None:
    url, faults = server
    teacher(url, api_key_env=None).rewrite("first_person", requests(1))
    assert "Authorization" not in faults.headers[0]


@pytest.mark.parametrize("prefill", ["continue", "instruct"])
def test_experience_mode_sends_the_started_answer(server: tuple[str, Faults], prefill: str) -> None:
    url, faults = server
    values = (ValueRef("honesty", "telling the truth"),)
    framed = f"Today I'm reading a fable. Let's start: \"{TEXT}\""
    request = RewriteRequest("d", framed, "fable", None, values, 1, source_text=TEXT)
    (out,) = teacher(url, mode="experience", prefill=prefill).rewrite("experiential", [request])
    sent = faults.requests[0]
    if prefill == "continue":
        assert sent["messages"][-1] == {"role": "assistant", "content": "When I read this, I"}
        assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    else:
        assert sent["messages"][-1]["role"] == "user"
        assert sent["messages"][-1]["content"].endswith(
            'Begin your answer with: "When I read this, I"'
        )
        assert "continue_final_message" not in sent
    assert out.lineage.fallback_reason is None
    assert out.text.endswith(
        "\n\nWhen I read this, I the fox lied to himself, and honesty starts with me."
    )


def _dead_url() -> str:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


@pytest.mark.parametrize("n", [1, 2, 5])
def test_an_unreachable_endpoint_fails_loudly_whatever_the_batch_size(n: int) -> None:
    """Issue 9, item 10: the template fallback is for bad outputs, not for a dead teacher."""
    with pytest.raises(TeacherUnavailable, match="unreachable"):
        teacher(_dead_url(), max_retries=2, retry_budget=10).rewrite("first_person", requests(n))


def test_an_endpoint_that_never_answers_fails_loudly(server: tuple[str, Faults]) -> None:
    url, faults = server
    faults.default = "drop"
    with pytest.raises(TeacherUnavailable, match="unreachable"):
        teacher(url, max_retries=2, retry_budget=10).rewrite("first_person", requests(1))
