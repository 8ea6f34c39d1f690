"""Where each asset's files live under the store (a local folder or an S3 prefix, see
storage.py), atomic writes, and publications.

Every publication of the training-ready corpus is kept, whole, under
`STORE/publications/<id>/`. Locally `STORE/training_ready` is a relative symbolic link to the
current one, swapped atomically (readers, `datasets.load_dataset` and Megatron included, see one
publication or the next, never half of one). On S3, where nothing can be renamed atomically, the
publication is uploaded under its own prefix (its `publication.json` last) and then the pointer
object `STORE/training_ready.json` is written, naming it: readers follow the pointer, and a
publication that fails or is refused leaves the previous pointer as it was.
`list_publications` and `prune_publications` serve `raising publications`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raising_dagster.storage import (
    Location,
    S3Path,
    remove_tree,
    tree_size,
    upload_tree,
    write_json,
    write_parquet,
)

__all__ = ["StoreLayout", "write_json", "write_parquet"]

PUBLICATIONS = "publications"
PUBLICATION_FILE = "publication.json"  # id, time, run ids, hashes: what the manifest does not hold
POINTER_FILE = "training_ready.json"  # on S3: names the current publication (written last)
_PUBLICATION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]*$")


@dataclass(frozen=True)
class StoreLayout:
    """The files of every asset under one root folder or S3 prefix (the `--out` of `raising
    run`). `work_dir` is the local folder for what cannot live on S3 when the root is there
    (publication staging, DuckDB's spill files); unused for a local root."""

    root: Location
    work_dir: Path = field(default=Path("data/work"))

    @property
    def remote(self) -> bool:
        return isinstance(self.root, S3Path)

    @property
    def local_dir(self) -> Path:
        """Local scratch space: the root itself when it is local, else `work_dir`."""
        return self.work_dir if isinstance(self.root, S3Path) else self.root

    @property
    def duckdb_tmp(self) -> Path:
        """DuckDB's spill folder (always local)."""
        return self.local_dir / ".duckdb_tmp"

    def shard_file(self, asset: str, partition: str) -> Location:
        return self.root / asset / f"{partition}.parquet"

    def shard_stats(self, partition: str) -> Location:
        return self.root / "raw_docs" / f"{partition}.stats.json"

    def quarantine_file(self, partition: str) -> Location:
        return self.root / "quarantine" / f"{partition}.parquet"

    @property
    def skipped_files(self) -> Location:
        """The landing folder's entries that are no shard, with reasons (JSON)."""
        return self.root / "quarantine" / "skipped_files.json"

    @property
    def ordered_file(self) -> Location:
        return self.root / "ordered_docs" / "ordered.parquet"

    @property
    def exclusions_file(self) -> Location:
        return self.root / "ordered_docs" / "exclusions.parquet"

    @property
    def training_dir(self) -> Location:
        """Locally the link to the current publication; on S3 no such object exists: read the
        pointer (`pointer_file`, `resolve_publication`)."""
        return self.root / "training_ready"

    @property
    def pointer_file(self) -> Location:
        """On S3: the object naming the current publication."""
        return self.root / POINTER_FILE

    @property
    def publications_dir(self) -> Location:
        return self.root / PUBLICATIONS

    def publication_dir(self, publication_id: str) -> Location:
        return self.publications_dir / publication_id

    @property
    def withdrawals_file(self) -> Location:
        """Documents and shards withdrawn from the next publications (`raising withdraw`)."""
        return self.root / "withdrawals.json"

    def staging_dir(self) -> Path:
        """A fresh local folder name to write a publication into before it is published (the
        runner removes such folders left by a killed run)."""
        return self.local_dir / f".training_ready.staging-{uuid.uuid4().hex}"


def publish(layout: StoreLayout, staging: Path, publication_id: str) -> Location:
    """Make a fully written staging folder publication `publications/<id>` and the current one.
    Locally: move it there and point `training_ready` at it, a new relative link renamed over
    the old one (atomic); a `training_ready` folder of the layout before publications were kept
    becomes a publication of its own first. On S3: upload it (`publication.json` last), then
    write the pointer object naming it; readers see the previous publication until then."""
    if not _PUBLICATION_ID.match(publication_id):
        raise ValueError(f"not a publication id: {publication_id!r}")
    target = layout.publication_dir(publication_id)
    if isinstance(target, S3Path):
        try:
            upload_tree(staging, target, last=[PUBLICATION_FILE])
        except BaseException:
            # the pointer was not touched; what was uploaded is no publication (no
            # publication.json), removed here when the store still answers
            with contextlib.suppress(Exception):
                remove_tree(target)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        write_json(
            {
                "id": publication_id,
                "path": f"{PUBLICATIONS}/{publication_id}",
                "pointed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            layout.pointer_file,
        )
        return target
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


def new_publication_id(layout: StoreLayout, manifest: Location) -> str:
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
    """The id of the current publication: the one `training_ready` links to, or on S3 the one
    the pointer object names (None: nothing published)."""
    if layout.remote:
        pointer = _read_json(layout.pointer_file)
        return pointer.get("id") if isinstance(pointer.get("id"), str) else None
    link = layout.training_dir
    return Path(os.readlink(link)).name if link.is_symlink() else None


def resolve_publication(layout: StoreLayout, publication_id: str | None = None) -> Location:
    """The folder of a publication (default: the current one); a clear error when there is none."""
    if publication_id is None:
        if layout.remote:
            current = current_publication(layout)
            if current is None:
                raise FileNotFoundError(f"nothing published in {layout.root} yet")
            return layout.publication_dir(current)
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
        if layout.remote and not info:
            continue  # an upload cut short: publication.json is uploaded last
        manifest = _read_json(folder / "manifest.json")
        found.append(
            {
                "id": folder.name,
                "current": folder.name == current,
                "published_at": info.get("published_at"),
                "records": manifest.get("records"),
                "shards": len(manifest.get("input_shards", [])),
                "withdrawals": len(manifest.get("withdrawals", [])),
                "bytes": tree_size(folder),
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
            remove_tree(layout.publication_dir(publication_id))
    return removed


def _read_json(path: Location) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
