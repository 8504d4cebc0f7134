"""Which of an index's titles may be shown in a country, as boolean masks over its rows.

Built from the title feature table's ``available_countries`` (published daily by the pipelines)
for one two-tower version's title index: a title the table does not know is not shown anywhere
(its rights are unknown). A country's mask is computed on first use and kept; both versions are
held by reference, so a swap of either builds a new ``Availability``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import numpy.typing as npt

from recsys.features.title_table import TitleFeatureTable
from recsys.models.inference import TitleIndex

__all__ = ["Availability", "CountryRows"]

Mask = npt.NDArray[np.bool_]


class CountryRows:
    """Per country, the table rows of the titles available there (built once per table)."""

    def __init__(self, table: TitleFeatureTable) -> None:
        self.table = table
        rows: defaultdict[str, list[int]] = defaultdict(list)
        for row, countries in enumerate(table.columns["available_countries"]):
            for country in countries:
                rows[country].append(row)
        self._masks: dict[str, Mask] = {}
        for country, found in rows.items():
            mask = np.zeros(len(table) + 1, np.bool_)  # the last entry: "not in the table"
            mask[np.asarray(found, np.int64)] = True
            self._masks[country] = mask

    def mask(self, country: str) -> Mask | None:
        """Over table rows plus one (index -1: not in the table, always False)."""
        return self._masks.get(country)


class Availability:
    def __init__(self, index: TitleIndex, countries: CountryRows) -> None:
        self.index = index
        self.countries = countries
        self._table_rows = countries.table.rows(index.title_ids)  # -1 picks the False slot
        self._by_country: dict[str, Mask] = {}
        self._nowhere = np.zeros(len(index), np.bool_)

    def allowed(self, country: str) -> Mask:
        """A fresh mask over the index rows: True where the title may be shown in ``country``."""
        mask = self._by_country.get(country)
        if mask is None:
            table_mask = self.countries.mask(country)
            mask = self._nowhere if table_mask is None else table_mask[self._table_rows]
            self._by_country[country] = mask
        return mask.copy()
