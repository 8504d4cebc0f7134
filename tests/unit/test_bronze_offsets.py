"""Offsets in the snapshot summary: encoding, merging, and reading back from a real table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.config import LakeSettings
from recsys.lake import load_catalog
from recsys_bronze.offsets import (
    OFFSETS_PROPERTY,
    decode,
    encode,
    merge,
    table_offsets,
)
from recsys_bronze.tables import EVENTS_ARROW, open_events_table

offsets_maps = st.dictionaries(
    st.tuples(st.text(min_size=1, max_size=20), st.integers(0, 1_000)),
    st.integers(0, 2**62),
    max_size=20,
)


@given(offsets_maps)
def test_decode_inverts_encode(offsets: dict[tuple[str, int], int]) -> None:
    assert decode(encode(offsets)) == offsets


def test_encoding_is_compact_sorted_json() -> None:
    text = encode({("t", 10): 5, ("t", 2): 7, ("a", 0): 1})
    assert text == '{"a":{"0":1},"t":{"10":5,"2":7}}'


@pytest.mark.parametrize(
    "text",
    ["[]", '{"t": 3}', '{"t": {"0": -1}}', '{"t": {"0": "5"}}', '{"t": {"0": true}}', "nope"],
)
def test_corrupt_offsets_raise_instead_of_resuming_from_zero(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json.JSONDecodeError is a ValueError too
        decode(text)


def test_negative_offsets_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode({("t", 0): -1})


def test_merge_never_moves_back_and_never_forgets_a_partition() -> None:
    held = {("t", 0): 10, ("t", 1): 20}
    assert merge(held, {("t", 0): 15, ("t", 1): 5, ("t", 2): 1}) == {
        ("t", 0): 15,
        ("t", 1): 20,
        ("t", 2): 1,
    }


def test_table_offsets_come_from_the_newest_snapshot_that_has_them(tmp_path: Path) -> None:
    lake = LakeSettings(warehouse=tmp_path / "lake")
    table = open_events_table(load_catalog(lake), lake, "bronze_events")
    assert table_offsets(table) == {}
    empty = pa.Table.from_pylist([], schema=EVENTS_ARROW)
    table.append(empty, snapshot_properties={OFFSETS_PROPERTY: encode({("t", 0): 3})})
    table.append(empty, snapshot_properties={OFFSETS_PROPERTY: encode({("t", 0): 9})})
    # A maintenance job's snapshot (no offsets) must not hide the bronze writer's.
    table.append(empty, snapshot_properties={"recsys.job": "compaction"})
    assert table_offsets(table) == {("t", 0): 9}
