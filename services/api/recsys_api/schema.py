"""The answer of ``GET /v1/recommendations/{user_id}``: its JSON built from a request's result,
and the models that document it in OpenAPI (/docs).

The route serializes with orjson from plain dictionaries (:func:`answer`); the pydantic models
are the contract's documentation, and a unit test checks every answer against them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from recsys.recommendations.v1 import served_pb2
from recsys_api.recommend import Result

__all__ = ["Item", "Problem", "Recommendations", "answer", "server_timing"]


class Item(BaseModel):
    id: str = Field(description="Title id.")
    title: str = Field(description="The title's name (its id when the catalog has none).")
    genres: list[str] = Field(description="Most defining first.")
    score: float = Field(
        description="The ranker's combined score (plus any boost); by rank at levels 2-3."
    )
    reason: str = Field(
        description="Why it is here: ranked, new release, diversity, popular in <country>, "
        "popular in <genre> in <country>, your last recommendations, popular everywhere."
    )


class Step(BaseModel):
    reason: str = Field(description="Stable code, e.g. ranker_unavailable.")
    level: int = Field(description="The level this reason implies.")
    detail: str = Field(description="What failed, for people.")


class Variant(BaseModel):
    experiment: str
    layer: str
    variant: str


class Recommendations(BaseModel):
    request_id: str = Field(description="Also the impression event's id in the lake.")
    user_id: str
    country: str
    device: str
    items: list[Item]
    level: int = Field(description="0 full, 1 degraded, 2 fallback, 3 emergency.")
    level_name: str
    why: list[Step] = Field(description="The steps down the ladder; empty at level 0.")
    variants: list[Variant]
    holdout: bool
    config_version: str = Field(description="The experiments configuration; empty without it.")
    models: dict[str, str] = Field(
        description="Registry versions that served: candidates, ranker, titles."
    )
    timing_ms: dict[str, float] = Field(
        description="Per stage (experiments, features, candidates, ranking, fallback, postrank) "
        "and total; also in the Server-Timing header."
    )


class Problem(BaseModel):
    detail: str


def answer(result: Result, total_ms: float) -> dict[str, Any]:
    served, titles = result.served, result.titles
    names = titles.names if titles is not None else {}
    info = titles.info if titles is not None else {}
    return {
        "request_id": served.request_id,
        "user_id": served.user_id,
        "country": served.country,
        "device": served.device,
        "items": [_item(i, names, info) for i in served.items],
        "level": int(result.level),
        "level_name": result.level.name.lower(),
        "why": [
            {"reason": s.reason.value, "level": int(s.reason.level), "detail": s.detail}
            for s in result.steps.steps
        ],
        "variants": [
            {"experiment": a.experiment_id, "layer": a.layer, "variant": a.variant}
            for a in served.assignments
        ],
        "holdout": served.holdout,
        "config_version": served.config_version,
        "models": {
            "candidates": served.candidates_model_version,
            "ranker": served.ranker_model_version,
            "titles": titles.version if titles is not None else "",
        },
        "timing_ms": {**result.timings_ms, "total": round(total_ms, 3)},
    }


def _item(
    item: served_pb2.ServedItem, names: dict[str, str], info: dict[str, Any]
) -> dict[str, Any]:
    known = info.get(item.title_id)
    return {
        "id": item.title_id,
        "title": names.get(item.title_id, item.title_id),
        "genres": list(known.genres) if known is not None else [],
        "score": round(float(item.score), 6),
        "reason": item.reason,
    }


def server_timing(timings_ms: dict[str, float], total_ms: float) -> str:
    """The ``Server-Timing`` header (W3C): one metric per stage, then the total."""
    parts = [f"{stage};dur={ms:.2f}" for stage, ms in timings_ms.items()]
    parts.append(f"total;dur={total_ms:.2f}")
    return ", ".join(parts)
