"""Where each asset's files live under the store folder, atomic writes, and publications.

Every publication of the training-ready corpus is kept, whole, under
`STORE/publications/<id>/`; `STORE/training_ready` is a relative symbolic link to the current
one, swapped atomically (readers, `datasets.load_dataset` and Megatron included, see one
publication or the next, never half of one). `list_publications` and `prune_publications` serve
`raising publications`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

PUBLICATIONS = "publications"
PUBLICATION_FILE = "publication.json"  # id, time, run ids, hashes: what the manifest does not hold
_PUBLICATION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]*$")


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
        """The current publication (a symbolic link into `publications/`)."""
        return self.root / "training_ready"

    @property
    def publications_dir(self) -> Path:
        return self.root / PUBLICATIONS

    def publication_dir(self, publication_id: str) -> Path:
        return self.publications_dir / publication_id

    @property
    def withdrawals_file(self) -> Path:
        """Documents and shards withdrawn from the next publications (`raising withdraw`)."""
        return self.root / "withdrawals.json"

    def staging_dir(self) -> Path:
        """A fresh folder name to write a publication into before it is published (the runner
        removes such folders left by a killed run)."""
        return self.root / f".{self.training_dir.name}.staging-{uuid.uuid4().hex}"


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


def publish(layout: StoreLayout, staging: Path, publication_id: str) -> Path:
    """Move a fully written staging folder to `publications/<id>` and point `training_ready` at
    it: a new relative link renamed over the old one (atomic). A `training_ready` folder of the
    layout before publications were kept becomes a publication of its own first."""
    if not _PUBLICATION_ID.match(publication_id):
        raise ValueError(f"not a publication id: {publication_id!r}")
    target = layout.publication_dir(publication_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    link = layout.training_dir
    if link.is_dir() and not link.is_symlink():
        _adopt_folder(layout)
    # named like a staging folder, so the runner clears it if a kill leaves it behind
    tmp = link.with_name(f".{link.name}.staging-link-{uuid.uuid4().hex}")
    os.symlink(Path(PUBLICATIONS) / publication_id, tmp, target_is_directory=True)
    os.replace(tmp, link)
    return target


def _adopt_folder(layout: StoreLayout) -> None:
    """Keep a corpus published before publications were kept as publication `legacy-<sha>`."""
    folder = layout.training_dir
    manifest = folder / "manifest.json"
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists() else ""
    os.replace(folder, layout.publication_dir(f"legacy-{digest[:12] or uuid.uuid4().hex[:12]}"))


def new_publication_id(layout: StoreLayout, manifest: Path) -> str:
    """A publication's id: its time (UTC, to the second) and its manifest's hash, unique in the
    store (ids sort by time)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = f"{stamp}-{hashlib.sha256(manifest.read_bytes()).hexdigest()[:8]}"
    candidate, n = base, 1
    while layout.publication_dir(candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def current_publication(layout: StoreLayout) -> str | None:
    """The id of the publication `training_ready` points at (None: nothing published)."""
    link = layout.training_dir
    return Path(os.readlink(link)).name if link.is_symlink() else None


def resolve_publication(layout: StoreLayout, publication_id: str | None = None) -> Path:
    """The folder of a publication (default: the current one); a clear error when there is none."""
    if publication_id is None:
        if not layout.training_dir.exists():
            raise FileNotFoundError(f"nothing published in {layout.root} yet")
        return layout.training_dir.resolve()
    folder = layout.publication_dir(publication_id)
    if not _PUBLICATION_ID.match(publication_id) or not folder.is_dir():
        known = ", ".join(p["id"] for p in list_publications(layout)) or "none"
        raise FileNotFoundError(f"no publication {publication_id!r} in {layout.root} ({known})")
    return folder


def list_publications(layout: StoreLayout) -> list[dict[str, Any]]:
    """Every kept publication, oldest first: id, whether current, records, shards, when."""
    current = current_publication(layout)
    found = []
    if not layout.publications_dir.is_dir():
        return found
    for folder in sorted(p for p in layout.publications_dir.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        info = _read_json(folder / PUBLICATION_FILE)
        manifest = _read_json(folder / "manifest.json")
        found.append(
            {
                "id": folder.name,
                "current": folder.name == current,
                "published_at": info.get("published_at"),
                "records": manifest.get("records"),
                "shards": len(manifest.get("input_shards", [])),
                "withdrawals": len(manifest.get("withdrawals", [])),
                "bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()),
                "path": str(folder),
            }
        )
    return sorted(found, key=lambda p: (p["published_at"] or "", p["id"]))


def prune_publications(layout: StoreLayout, keep: int, dry_run: bool = False) -> list[str]:
    """Remove all but the newest `keep` publications; the current one is always kept. Returns
    the ids removed (or that would be)."""
    publications = list_publications(layout)
    newest = {p["id"] for p in publications[len(publications) - keep :]} if keep else set()
    removed = [p["id"] for p in publications if not p["current"] and p["id"] not in newest]
    if not dry_run:
        for publication_id in removed:
            shutil.rmtree(layout.publication_dir(publication_id))
    return removed


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
