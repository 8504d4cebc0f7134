"""What bronze gained since a silver run: the snapshots after a given one and the days they touch.

The bronze writer only appends (one snapshot per micro-commit, one Parquet file per event day);
each data file's partition value is its day. So the days a run has to recompute are the
partition values of the data files added by the snapshots it has not processed, read from the
manifests without touching a single data file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from pyiceberg.manifest import ManifestContent, ManifestEntryStatus
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

__all__ = ["BronzeChanges", "changes_since"]

_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class BronzeChanges:
    """Bronze from ``since`` (exclusive) to ``head`` (inclusive)."""

    head: int | None  # newest snapshot id; None while bronze has no snapshot
    snapshots: int  # snapshots not processed yet
    days: frozenset[date]  # event days with rows added by them
    full: bool  # ``since`` is not an ancestor of head (first run, or expired): recompute all
    # Rows per day in the files counted (all live files on a full run): sizes the work chunks.
    rows_by_day: dict[date, int] = field(default_factory=dict)


def changes_since(table: Table, since: int | None) -> BronzeChanges:
    """The days touched by the snapshots after ``since`` on the current branch."""
    head = table.current_snapshot()
    if head is None:
        return BronzeChanges(None, 0, frozenset(), full=False)
    new: list[int] = []
    snapshot: Snapshot | None = head
    found = False
    while snapshot is not None:
        if snapshot.snapshot_id == since:
            found = True
            break
        new.append(snapshot.snapshot_id)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    full = since is None or not found
    rows_by_day: dict[date, int] = {}
    wanted = set(new)
    # On a full run every live file counts, whichever snapshot added it.
    # The head's manifest list holds every live manifest; a file added by a snapshot we have not
    # seen is in a manifest added by that snapshot (the bronze writer fast-appends; a compaction
    # would add its rewritten files under its own id, which only costs a recompute).
    for manifest in head.manifests(table.io):
        if manifest.content != ManifestContent.DATA:
            continue
        if not full and manifest.added_snapshot_id not in wanted:
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            if full or (entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id in wanted):
                day = _EPOCH + timedelta(days=int(entry.data_file.partition[0]))
                rows_by_day[day] = rows_by_day.get(day, 0) + entry.data_file.record_count
    return BronzeChanges(head.snapshot_id, len(new), frozenset(rows_by_day), full, rows_by_day)
