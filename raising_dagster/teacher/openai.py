"""The `openai` teacher: any OpenAI-compatible chat endpoint (e.g. one or many vLLM OpenAI servers
behind a URL). Async requests with bounded concurrency, timeouts, exponential backoff with full
jitter on 429/5xx/connection errors/malformed bodies, and a bounded retry budget per batch.
The API key is read only from the environment variable named in the settings."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Sequence
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
        limits = httpx.Limits(max_connections=s.concurrency)
        budget = _Budget(int(s.retry_budget * len(calls)) + s.max_retries)
        gate = asyncio.Semaphore(s.concurrency)
        async with httpx.AsyncClient(
            base_url=s.base_url.rstrip("/") + "/",
            timeout=timeout,
            limits=limits,
            headers=self._headers(),
            transport=self._transport,
        ) as client:
            return list(await asyncio.gather(*(self._one(client, c, gate, budget) for c in calls)))

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
        self, client: httpx.AsyncClient, call: Call, gate: asyncio.Semaphore, budget: _Budget
    ) -> Completion:
        body = self._body(call)
        error, retry_after, answered = "no_attempt", None, False
        for retry in range(self.settings.max_retries + 1):
            if retry:
                if not budget.take():
                    raise TeacherUnavailable(
                        f"{self.settings.base_url}: retry budget spent, last error {error}"
                    )
                await asyncio.sleep(self._backoff(retry, retry_after))
            retry_after = None
            try:
                async with gate:
                    response = await client.post("chat/completions", json=body)
            except httpx.TimeoutException:
                error = "timeout"
                continue
            except httpx.TransportError as exc:
                error = f"connection:{type(exc).__name__}"
                continue
            answered = True
            if response.status_code in _RETRY_STATUS:
                error = f"http_{response.status_code}"
                retry_after = response.headers.get("retry-after")
                continue
            if response.status_code >= 400:
                log.warning("teacher request refused: %s %s", response.status_code, response.text)
                return Completion(error=f"http_{response.status_code}")
            completion = _parse(response, call.prefill)
            if completion is None:
                error = "malformed_response"
                continue
            return completion
        if not answered:
            raise TeacherUnavailable(
                f"{self.settings.base_url} unreachable: no answer in "
                f"{self.settings.max_retries + 1} tries (last error {error})"
            )
        return Completion(error=error)

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
