"""GetTitleFeatures' answer from the in-process title table, column by column.

Each column is built with numpy (numbers) or by joining the table's rows (strings and lists), so
500 titles cost a few packed arrays, not 500 messages or 500 store reads. Lists go flattened with
their lengths (``StringListColumn``): 500 ``StringList`` messages per column cost 0.45 ms to
build, the two flat fields a fraction of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.features.registry import Dtype
from recsys.features.title_table import TITLE_FEATURES, TitleFeatureTable
from recsys.featurestore.v1 import featurestore_pb2 as pb

__all__ = ["ALL_TITLE_FEATURES", "TitleColumns"]

ALL_TITLE_FEATURES: tuple[str, ...] = tuple(f.name for f in TITLE_FEATURES)
_DEFINITIONS = {f.name: f for f in TITLE_FEATURES}


@dataclass(frozen=True)
class TitleColumns:
    """A loaded title table with its list columns as ready-made messages."""

    table: TitleFeatureTable
    _lengths: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, table: TitleFeatureTable) -> TitleColumns:
        lengths = {
            f.name: np.asarray([len(v) for v in table.columns[f.name]], np.int64)
            for f in TITLE_FEATURES
            if f.dtype is Dtype.STRING_LIST
        }
        return cls(table, lengths)

    def columns(
        self, title_ids: Sequence[str], names: Sequence[str]
    ) -> tuple[list[pb.FeatureColumn], npt.NDArray[np.int64]]:
        """One column per name, aligned with ``title_ids``; and the rows (-1 = not in table)."""
        rows = self.table.rows(title_ids)
        missing = rows < 0
        safe = np.where(missing, 0, rows)
        is_default = missing.tolist()
        known = rows[~missing].tolist()
        out = []
        for name in names:
            feature = _DEFINITIONS[name]
            column = pb.FeatureColumn(name=name, is_default=is_default)
            values = self.table.columns[name]
            if feature.dtype in (Dtype.INT64, Dtype.FLOAT64):
                array = np.asarray(values)
                picked = (
                    np.where(missing, feature.default, array[safe])
                    if len(array)
                    else np.full(len(rows), feature.default)
                )
                if feature.dtype is Dtype.INT64:
                    column.int64_values.values.extend(picked.astype(np.int64).tolist())
                else:
                    column.float64_values.values.extend(picked.astype(np.float64).tolist())
            elif feature.dtype is Dtype.STRING_LIST:
                # The registry default of every list feature is the empty list.
                lists: list[list[str]] = values  # type: ignore[assignment]
                lengths = self._lengths[name]
                target = column.string_list_values
                target.lengths.extend(
                    (np.where(missing, 0, lengths[safe]) if len(lengths) else rows * 0).tolist()
                )
                target.values.extend(chain.from_iterable(lists[r] for r in known))
            else:
                strings: list[Any] = list(values)
                column.string_values.values.extend(
                    str(feature.default) if r < 0 else strings[r] for r in rows.tolist()
                )
            out.append(column)
        return out, rows
