"""The `openai` teacher: any OpenAI-compatible chat endpoint (e.g. one or many vLLM OpenAI servers
behind a URL), or several endpoints without a router (`teacher.base_urls`). Async requests with
bounded concurrency per endpoint, timeouts, exponential backoff with full jitter on
429/5xx/connection errors/malformed bodies, and a bounded retry budget per batch.

With several endpoints each request goes to the healthy endpoint with the fewest requests in
flight (ties in turn); a retry goes to another endpoint than the one that just failed. An
endpoint that fails `eject_after_failures` requests in a row is ejected for `eject_s` seconds
(across batches) while another is healthy; then it gets requests again and one more failure
ejects it again. When every endpoint keeps failing, requests fail as with one endpoint:
TeacherUnavailable. The API key is read only from the environment variable named in the
settings."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from raising_dagster.config import IdentityCard, TeacherSettings
from raising_dagster.teacher.llm import Call, Completion, LlmTeacher

log = logging.getLogger(__name__)

# Sampling fields beyond the OpenAI API (top_k, repetition_penalty, ...) are sent as they are:
# vLLM's server accepts them as extensions.
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class TeacherUnavailable(RuntimeError):
    """The endpoint kept failing until the batch's retry budget ran out, or a request never got
    an answer (connection refused, dropped or timed out on every try): a dead teacher fails the
    step, whatever the batch size; the template fallback is for bad outputs only."""


class _Budget:
    def __init__(self, retries: int) -> None:
        self.left = retries

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclass
class EndpointHealth:
    """One endpoint's state, kept across batches: consecutive failures, ejection, counters."""

    url: str
    failures: int = 0  # in a row
    ejected_until: float = 0.0  # time.monotonic()
    requests: int = 0
    errors: int = 0
    ejections: int = 0
    in_flight: int = 0  # holding or waiting for one of its slots (this batch)

    def healthy(self, now: float) -> bool:
        return self.ejected_until <= now

    def counters(self) -> dict[str, int]:
        return {"requests": self.requests, "errors": self.errors, "ejections": self.ejections}


@dataclass
class EndpointPool:
    """Chooses an endpoint per request and keeps their health (module doc)."""

    endpoints: list[EndpointHealth]
    eject_after: int
    eject_s: float
    _turn: int = field(default=0)

    @classmethod
    def of(cls, settings: TeacherSettings) -> EndpointPool:
        return cls(
            [EndpointHealth(url) for url in settings.endpoints()],
            settings.eject_after_failures,
            settings.eject_s,
        )

    def pick(self, avoid: EndpointHealth | None = None) -> EndpointHealth:
        """The least loaded healthy endpoint other than `avoid` (else `avoid` if healthy);
        with none healthy, the one whose ejection ends first."""
        now = time.monotonic()
        healthy = [e for e in self.endpoints if e.healthy(now)]
        choices = [e for e in healthy if e is not avoid] or healthy
        if not choices:
            return min(self.endpoints, key=lambda e: e.ejected_until)
        self._turn += 1
        n = len(self.endpoints)
        return min(
            choices,
            key=lambda e: (e.in_flight, (self.endpoints.index(e) - self._turn) % n),
        )

    def succeeded(self, endpoint: EndpointHealth) -> None:
        endpoint.failures = 0

    def failed(self, endpoint: EndpointHealth, error: str) -> None:
        endpoint.errors += 1
        endpoint.failures += 1
        if len(self.endpoints) > 1 and endpoint.failures >= self.eject_after:
            now = time.monotonic()
            if endpoint.healthy(now):
                endpoint.ejections += 1
                log.warning(
                    "teacher endpoint %s ejected for %.0fs after %d failures in a row (last: %s)",
                    endpoint.url,
                    self.eject_s,
                    endpoint.failures,
                    error,
                )
            endpoint.ejected_until = now + self.eject_s
            endpoint.failures = self.eject_after - 1  # back on probation: one more failure ejects


class OpenAITeacher(LlmTeacher):
    """Generates through `POST {base_url}/chat/completions`, one request per document."""

    backend = "openai"

    def __init__(
        self,
        settings: TeacherSettings,
        identity: IdentityCard,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.model:
            raise ValueError("the openai teacher needs teacher.model (the served model name)")
        super().__init__(settings, identity, model=settings.model)
        self._transport = transport
        self._rng = random.Random()
        self.pool = EndpointPool.of(settings)

    def endpoint_stats(self) -> dict[str, dict[str, int]]:
        """Requests, errors and ejections per endpoint since the teacher started."""
        return {e.url: e.counters() for e in self.pool.endpoints}

    def _headers(self) -> dict[str, str]:
        name = self.settings.api_key_env
        key = os.environ.get(name) if name else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _generate(self, calls: Sequence[Call]) -> list[Completion]:
        if not calls:
            return []
        return asyncio.run(self._generate_async(calls))

    async def _generate_async(self, calls: Sequence[Call]) -> list[Completion]:
        s = self.settings
        timeout = httpx.Timeout(s.timeout_s, connect=min(10.0, s.timeout_s))
        budget = _Budget(int(s.retry_budget * len(calls)) + s.max_retries)
        clients = {
            e.url: httpx.AsyncClient(
                base_url=e.url + "/",
                timeout=timeout,
                limits=httpx.Limits(max_connections=s.concurrency),
                headers=self._headers(),
                transport=self._transport,
            )
            for e in self.pool.endpoints
        }
        gates = {url: asyncio.Semaphore(s.concurrency) for url in clients}
        for endpoint in self.pool.endpoints:
            endpoint.in_flight = 0
        try:
            return list(
                await asyncio.gather(*(self._one(clients, gates, c, budget) for c in calls))
            )
        finally:
            for client in clients.values():
                await client.aclose()

    def _body(self, call: Call) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": _messages(call, self.settings.prefill),
            "max_tokens": call.max_tokens,
            "seed": call.seed,
            "n": 1,
            **call.sampling,
        }
        if call.prefill is not None and self.settings.prefill == "continue":
            # vLLM's server continues a final assistant message with these extensions
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        if call.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "dialogue", "schema": call.json_schema, "strict": True},
            }
        return body

    async def _one(
        self,
        clients: dict[str, httpx.AsyncClient],
        gates: dict[str, asyncio.Semaphore],
        call: Call,
        budget: _Budget,
    ) -> Completion:
        body = self._body(call)
        error, retry_after, answered = "no_attempt", None, False
        endpoint: EndpointHealth | None = None
        urls = ", ".join(e.url for e in self.pool.endpoints)
        for retry in range(self.settings.max_retries + 1):
            if retry:
                if not budget.take():
                    raise TeacherUnavailable(f"{urls}: retry budget spent, last error {error}")
                await asyncio.sleep(self._backoff(retry, retry_after))
            retry_after = None
            endpoint = await self._acquire(gates, avoid=endpoint)
            try:
                endpoint.requests += 1
                response = await clients[endpoint.url].post("chat/completions", json=body)
            except httpx.TimeoutException:
                error = "timeout"
                self.pool.failed(endpoint, error)
                continue
            except httpx.TransportError as exc:
                error = f"connection:{type(exc).__name__}"
                self.pool.failed(endpoint, error)
                continue
            finally:
                endpoint.in_flight -= 1
                gates[endpoint.url].release()
            answered = True
            if response.status_code in _RETRY_STATUS:
                error = f"http_{response.status_code}"
                retry_after = response.headers.get("retry-after")
                self.pool.failed(endpoint, error)
                continue
            if response.status_code >= 400:
                log.warning("teacher request refused: %s %s", response.status_code, response.text)
                self.pool.succeeded(endpoint)  # the endpoint answered; the request was refused
                return Completion(error=f"http_{response.status_code}")
            completion = _parse(response, call.prefill)
            if completion is None:
                error = "malformed_response"
                self.pool.failed(endpoint, error)
                continue
            self.pool.succeeded(endpoint)
            return completion
        if not answered:
            raise TeacherUnavailable(
                f"{urls} unreachable: no answer in "
                f"{self.settings.max_retries + 1} tries (last error {error})"
            )
        return Completion(error=error)

    async def _acquire(
        self, gates: dict[str, asyncio.Semaphore], avoid: EndpointHealth | None
    ) -> EndpointHealth:
        """An endpoint and one of its slots (counted in its `in_flight`); a request that waited
        for a slot of an endpoint ejected meanwhile goes to a healthy one instead."""
        while True:
            endpoint = self.pool.pick(avoid=avoid)
            endpoint.in_flight += 1
            await gates[endpoint.url].acquire()
            now = time.monotonic()
            if endpoint.healthy(now) or not any(e.healthy(now) for e in self.pool.endpoints):
                return endpoint
            gates[endpoint.url].release()
            endpoint.in_flight -= 1

    def _backoff(self, retry: int, retry_after: str | None) -> float:
        """Full-jitter exponential backoff, at least the server's Retry-After (seconds)."""
        s = self.settings
        delay = self._rng.uniform(0, min(s.max_backoff_s, s.backoff_s * 2 ** (retry - 1)))
        try:
            floor = float(retry_after) if retry_after else 0.0
        except ValueError:
            floor = 0.0
        return max(delay, min(floor, s.max_backoff_s))


def _messages(call: Call, prefill_mode: str) -> list[dict[str, str]]:
    """The chat messages of a call: a prefill goes as a final assistant message to continue
    (`continue`), or is asked for at the end of the last user message (`instruct`)."""
    if call.prefill is None:
        return call.messages
    if prefill_mode == "continue":
        return [*call.messages, {"role": "assistant", "content": call.prefill}]
    *head, last = call.messages
    asked = f'{last["content"]}\n\nBegin your answer with: "{call.prefill}"'
    return [*head, {**last, "content": asked}]


def _parse(response: httpx.Response, prefill: str | None = None) -> Completion | None:
    """A completion from a response body; with a prefill, the continuation only (a server that
    repeats the started answer has it removed)."""
    try:
        data = response.json()
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            return None
        if prefill and text.lstrip().startswith(prefill):
            text = text.lstrip()[len(prefill) :]
        usage = data.get("usage") or {}
        return Completion(text, choice.get("finish_reason"), int(usage.get("completion_tokens", 0)))
    except (ValueError, KeyError, IndexError, TypeError):
        return None
