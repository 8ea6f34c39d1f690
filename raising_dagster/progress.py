"""Progress of long teacher runs on the terminal (tqdm), quiet under CI or without a terminal."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def enabled() -> bool:
    """Show bars only on an interactive terminal outside CI (RAISING_PROGRESS=0/1 overrides)."""
    forced = os.environ.get("RAISING_PROGRESS")
    if forced is not None:
        return forced not in ("", "0", "false")
    return not os.environ.get("CI") and sys.stderr.isatty()


class StageProgress:
    """Documents done, generated tokens per second and an ETA for one stage of one shard."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.tokens = 0
        self.started = time.monotonic()

    def documents(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def generated(self, calls: int, tokens: int) -> None:
        self.tokens += tokens
        if self.bar is not None:
            rate = self.tokens / max(time.monotonic() - self.started, 1e-6)
            self.bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)


@contextmanager
def stage_progress(description: str, total: int) -> Iterator[StageProgress]:
    """A progress bar over `total` documents (a silent counter when bars are off)."""
    if not enabled() or total == 0:
        yield StageProgress(None)
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="doc", file=sys.stderr, leave=False) as bar:
        yield StageProgress(bar)
