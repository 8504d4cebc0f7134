"""The manifest of a model version: what it was trained on, what it reads, what it scored.

Written once, as ``manifest.json`` beside the model's files, when the version is published; a
version is immutable afterwards. The format is a contract (docs/models.md): readers refuse a
``format`` they do not know and ignore fields they do not know, so a field can be added without
breaking an older reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

__all__ = ["MANIFEST_FILE", "MANIFEST_FORMAT", "Manifest", "ModelFile"]

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1

_SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ModelFile(BaseModel):
    """One file of a version, as the registry hashed it when the version was published."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sha256: _SHA256
    size: int = Field(ge=0)


class Manifest(BaseModel):
    """What a publisher declares about a version; the registry fills the rest.

    The publisher sets ``name`` (or leaves it to the registry), ``training_data``, ``features``,
    ``metrics`` and ``params``; the registry sets ``version`` and ``files``, and ``created_at`` and
    ``code_version`` when they are left empty.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: int = Field(default=MANIFEST_FORMAT, ge=1, le=MANIFEST_FORMAT)
    name: str = Field(default="", pattern=r"^$|^[a-z][a-z0-9_]{0,63}$")
    version: str = Field(default="", pattern=r"^$|^v\d{4,}$")
    created_at: AwareDatetime | None = None
    code_version: str = ""
    training_data: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Snapshot ids of the tables the model was trained on, and the as-of time.",
    )
    features: list[str] = Field(
        default_factory=list, description="Registry feature names the model reads, in order."
    )
    feature_versions: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: dict[str, JsonValue] = Field(default_factory=dict)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    files: dict[str, ModelFile] = Field(
        default_factory=dict, description="Every file of the version but the manifest itself."
    )

    def created(self) -> datetime:
        """``created_at``, which every published manifest has (the epoch for an unfilled one)."""
        return self.created_at or datetime.fromtimestamp(0, UTC)
