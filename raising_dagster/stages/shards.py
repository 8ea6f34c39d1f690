"""Which registered shards a publication includes: the active set, computed in one place.

A shard is active when it is registered (a partition of `raw_shards`), its file is a shard of the
landing folder now, and it is not withdrawn. Every registered shard left out is named with a
reason: `removed_from_landing` (the file is gone), `skipped:<reason>` (the file is there but
`scan_landing` skips it, e.g. it became unreadable), or the reason a caller withdraws it for
(a license or privacy request). Nothing derived from a left-out shard is published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from raising_dagster.stages.ingest import LandingScan, ShardError, partition_key

REMOVED = "removed_from_landing"


@dataclass(frozen=True)
class ShardSelection:
    """The shards a publication includes, and those it leaves out with a reason."""

    active: list[str]
    withdrawn: dict[str, str] = field(default_factory=dict)

    def withdrawn_records(self) -> list[dict[str, str]]:
        return [{"shard": k, "reason": r} for k, r in sorted(self.withdrawn.items())]


def _key(name: str) -> str | None:
    try:
        return partition_key(name)
    except ShardError:
        return None


def select_shards(
    registered: Sequence[str], scan: LandingScan, withdraw: Mapping[str, str] | None = None
) -> ShardSelection:
    """The active shards among the registered ones (module doc); `withdraw` maps shards to
    leave out to the reason why."""
    skipped = {_key(s.name): s.reason for s in scan.skipped}
    active, withdrawn = [], {}
    for key in sorted(set(registered)):
        if withdraw and key in withdraw:
            withdrawn[key] = withdraw[key]
        elif key in scan.shards:
            active.append(key)
        else:
            withdrawn[key] = f"skipped:{skipped[key]}" if key in skipped else REMOVED
    return ShardSelection(active, withdrawn)
