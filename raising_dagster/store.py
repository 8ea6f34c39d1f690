"""Where each asset's files live under the store folder, and atomic writes."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl


@dataclass(frozen=True)
class StoreLayout:
    """The files of every asset under one root folder (the `--out` of `raising run`)."""

    root: Path

    def shard_file(self, asset: str, partition: str) -> Path:
        return self.root / asset / f"{partition}.parquet"

    def shard_stats(self, partition: str) -> Path:
        return self.root / "raw_docs" / f"{partition}.stats.json"

    def quarantine_file(self, partition: str) -> Path:
        return self.root / "quarantine" / f"{partition}.parquet"

    @property
    def skipped_files(self) -> Path:
        """The landing folder's entries that are no shard, with reasons (JSON)."""
        return self.root / "quarantine" / "skipped_files.json"

    @property
    def ordered_file(self) -> Path:
        return self.root / "ordered_docs" / "ordered.parquet"

    @property
    def exclusions_file(self) -> Path:
        return self.root / "ordered_docs" / "exclusions.parquet"

    @property
    def training_dir(self) -> Path:
        return self.root / "training_ready"


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write a Parquet file atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.write_parquet(tmp, compression="zstd", statistics=True)
    os.replace(tmp, path)


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def replace_dir(staging: Path, target: Path) -> None:
    """Swap a fully written staging folder into place; the previous version is removed after."""
    old = target.with_name(f".{target.name}.old.{uuid.uuid4().hex}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
