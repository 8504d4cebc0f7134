"""Kafka offsets carried in Iceberg snapshot summaries: the table remembers what it holds.

Every bronze commit stores, under :data:`OFFSETS_PROPERTY`, the next offset to read for every
partition the table has ever received (not only the partitions of that commit), so the newest
snapshot that carries the property alone says where to resume::

    {"recsys.events.v1": {"0": 1200, "3": 877}}

Other writers of the table (compaction, GDPR deletes) make snapshots without the property; the
reader walks back through the ancestors to the newest one that has it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

__all__ = ["OFFSETS_PROPERTY", "Offsets", "decode", "encode", "merge", "table_offsets"]

OFFSETS_PROPERTY = "recsys.bronze.offsets"

Offsets = dict[tuple[str, int], int]
"""(topic, partition) -> next offset to read (last offset held + 1)."""


def encode(offsets: Mapping[tuple[str, int], int]) -> str:
    """Compact, sorted JSON, so equal offsets always produce the same summary text."""
    nested: dict[str, dict[str, int]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        if partition < 0 or offset < 0:
            raise ValueError(f"negative partition or offset: {topic}[{partition}]={offset}")
        nested.setdefault(topic, {})[str(partition)] = offset
    return json.dumps(nested, separators=(",", ":"), sort_keys=True)


def decode(text: str) -> Offsets:
    """The inverse of :func:`encode`; a malformed value raises instead of resuming from zero."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{OFFSETS_PROPERTY} is not an object: {text!r}")
    offsets: Offsets = {}
    for topic, partitions in raw.items():
        if not isinstance(partitions, dict):
            raise ValueError(f"{OFFSETS_PROPERTY}[{topic!r}] is not an object: {text!r}")
        for partition, offset in partitions.items():
            # bool is an int subclass; a true/false offset is corruption, not offset 1/0.
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise ValueError(f"bad offset {offset!r} for {topic}[{partition}]")
            offsets[(topic, int(partition))] = offset
    return offsets


def merge(held: Mapping[tuple[str, int], int], advance: Mapping[tuple[str, int], int]) -> Offsets:
    """Offsets after a commit: an offset never moves backwards, partitions are never dropped."""
    merged = dict(held)
    for key, offset in advance.items():
        merged[key] = max(offset, merged.get(key, 0))
    return merged


def table_offsets(table: Table) -> Offsets:
    """The offsets of the newest snapshot on the table's main branch that carries them."""
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        if snapshot.summary is None:
            continue
        text = snapshot.summary.get(OFFSETS_PROPERTY)
        if text is not None:
            return decode(text)
    return {}
