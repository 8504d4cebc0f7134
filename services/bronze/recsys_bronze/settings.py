"""Settings of the bronze writer, read from ``RECSYS_BRONZE__*`` environment variables.

``BronzeSettings`` is a plain section (a ``BaseModel``) so it can later become a field of
``recsys.config.Settings`` unchanged; until then :func:`load_bronze_settings` reads it with the same
prefix and delimiter the shared settings use::

    RECSYS_BRONZE__COMMIT_MAX_ROWS=5000 RECSYS_BRONZE__COMMIT_INTERVAL_S=10 \\
        python -m recsys_bronze
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.topics import EVENTS

__all__ = ["BronzeSettings", "load_bronze_settings"]


class BronzeSettings(BaseModel):
    topic: str = Field(default=EVENTS.name, min_length=1, description="Kafka topic to archive.")
    group_id: str = Field(
        default="recsys-bronze",
        min_length=1,
        description="Own consumer group: its offsets are informational, the table is the truth.",
    )
    table: str = Field(default="bronze_events", min_length=1)
    rejects_table: str = Field(default="bronze_rejects", min_length=1)
    commit_max_rows: int = Field(
        default=10_000, ge=1, description="A micro-commit holds at most this many records."
    )
    commit_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="The oldest uncommitted record waits at most this long for its commit.",
    )
    commit_retries: int = Field(
        default=5, ge=0, description="Retries of an Iceberg commit that lost a concurrent race."
    )
    dedup_window_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="A record whose event_id was read from the same partition at most this long "
        "before (by Kafka record timestamp) is a resend and is dropped.",
    )
    dedup_max_ids: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="event_ids remembered per partition, at most (about 176 bytes each; the "
        "memory bound, and the records re-read on assignment to rebuild it); 0 turns dedup off.",
    )


class _Env(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECSYS_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    bronze: BronzeSettings = Field(default_factory=BronzeSettings)


def load_bronze_settings() -> BronzeSettings:
    """The section from the environment (and ``.env``), like ``recsys.config.Settings`` reads."""
    return _Env().bronze
