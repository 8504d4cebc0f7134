"""The title feature table the serving services hold in memory, and how the pipelines publish it.

The daily job computes every title's features (``entity=title`` in the registry) and, beside the
Cassandra rows, publishes the whole table as one registry version named ``title_features``
(an Arrow IPC file, promoted at once). The feature store answers GetTitleFeatures from it and the
candidates service reads each title's ``available_countries`` from it: thousands of titles cost
one in-process lookup, never a store round trip per title. A service polls the pointer and swaps
a new table in when the pipelines publish one (recsys.serving.reload).

    version = publish_title_features(registry, arrow_table, feature_date)
    table = TitleFeatureTable.load(registry.current(TITLE_FEATURES_MODEL))
    rows = table.rows(["tt1", "tt2"])          # -1 where the table has no such title
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from recsys.features.definitions import FEATURES
from recsys.features.registry import Dtype, Entity, FeatureDefinition

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

    from recsys.models.registry import ModelRegistry, ModelVersion

__all__ = [
    "TABLE_FILE",
    "TITLE_FEATURES",
    "TITLE_FEATURES_MODEL",
    "TitleFeatureTable",
    "publish_title_features",
]

TITLE_FEATURES_MODEL = "title_features"
TABLE_FILE = "title_features.arrow"
KEY = "title_id"
NAME = "name"
# Every title feature of the registry, in registry order: the table's columns after the key.
TITLE_FEATURES: tuple[FeatureDefinition, ...] = tuple(FEATURES.select(entity=Entity.TITLE))
_NUMERIC = {Dtype.INT64: np.int64, Dtype.FLOAT64: np.float64}


def publish_title_features(
    registry: ModelRegistry,
    table: pa.Table,
    feature_date: date,
    display_names: Mapping[str, str] | None = None,
) -> str:
    """Publish the daily title features (``title_id`` plus every title feature of the registry)
    as a new ``title_features`` version and make it current. Returns the version id.

    ``display_names`` (title id -> its name in the catalog) adds the ``name`` column the API shows
    beside each recommendation; it is display data, not a feature."""
    import pyarrow as pa
    import pyarrow.ipc as ipc  # type: ignore[import-untyped]

    from recsys.features.online import feature_event_time
    from recsys.models.manifest import Manifest

    names = [KEY, *(f.name for f in TITLE_FEATURES)]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ValueError(f"title feature table lacks columns {missing}")
    table = table.select(names)
    if display_names is not None:
        ids = table.column(KEY).to_pylist()
        table = table.append_column(
            NAME, pa.array([display_names.get(t, "") for t in ids], pa.string())
        )
    with registry.new_version(TITLE_FEATURES_MODEL) as staging:
        with (
            pa.OSFile(str(staging / TABLE_FILE), "wb") as sink,
            ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table)
        staging.manifest = Manifest(
            training_data={
                "feature_date": feature_date.isoformat(),
                "event_time_ms": int(feature_event_time(feature_date).timestamp() * 1000),
            },
            features=names[1:],
            metrics={"titles": table.num_rows},
        )
    version = staging.version
    assert version is not None  # set by a publication that did not raise
    registry.promote(TITLE_FEATURES_MODEL, version)
    return version


@dataclass(frozen=True)
class TitleFeatureTable:
    """Every title's features, column by column. Numbers are numpy arrays; strings and lists are
    Python lists (what protobuf's repeated fields take). ``event_time_ms`` is the end of the
    feature date: every value reflects events before it."""

    title_ids: tuple[str, ...]
    columns: dict[str, np.ndarray[Any, Any] | list[Any]]
    event_time_ms: int
    version: str = ""
    names: tuple[str, ...] = ()  # display names by row; empty when the version has none
    _row: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._row.update({t: i for i, t in enumerate(self.title_ids)})

    def __len__(self) -> int:
        return len(self.title_ids)

    @classmethod
    def from_arrow(
        cls, table: pa.Table, *, event_time_ms: int, version: str = ""
    ) -> TitleFeatureTable:
        ids = [str(t) for t in table.column(KEY).to_pylist()]
        if len(set(ids)) != len(ids):
            raise ValueError("title feature table repeats a title id")
        columns: dict[str, np.ndarray[Any, Any] | list[Any]] = {}
        for feature in TITLE_FEATURES:
            values = table.column(feature.name).to_pylist()
            default = feature.default
            if feature.dtype in _NUMERIC:
                columns[feature.name] = np.asarray(
                    [default if v is None else v for v in values], _NUMERIC[feature.dtype]
                )
            elif feature.dtype is Dtype.STRING_LIST:
                columns[feature.name] = [list(default) if v is None else list(v) for v in values]
            else:
                columns[feature.name] = [default if v is None else v for v in values]
        names = (
            tuple(str(n or "") for n in table.column(NAME).to_pylist())
            if NAME in table.column_names
            else ()
        )
        return cls(tuple(ids), columns, event_time_ms, version, names)

    @classmethod
    def load(cls, version: ModelVersion) -> TitleFeatureTable:
        """The table of a published ``title_features`` version."""
        import pyarrow.ipc as ipc

        with ipc.open_file(str(version.file(TABLE_FILE))) as reader:
            table = reader.read_all()
        event_ms = version.manifest.training_data.get("event_time_ms")
        if not isinstance(event_ms, int):
            raise ValueError(f"{version.name} {version.version}: manifest has no event_time_ms")
        return cls.from_arrow(table, event_time_ms=event_ms, version=version.version)

    def name(self, row: int) -> str:
        """The display name of the title in ``row`` (its id when the version has no names)."""
        return (self.names[row] if self.names else "") or self.title_ids[row]

    def rows(self, title_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """The row of each title, -1 where the table has none."""
        get = self._row.get
        return np.fromiter((get(t, -1) for t in title_ids), np.int64, len(title_ids))
