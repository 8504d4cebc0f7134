"""The analytics questions of seed 001 by name, answered or not: the light part of ``gold``.

Kept apart from :mod:`recsys_pipelines.gold` so that ``recsys analytics --help`` and
``recsys analytics questions`` import nothing but this (the CLI loads on every call).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SUMMARIES", "UNANSWERABLE"]

SUMMARIES: Mapping[str, str] = {
    "top-titles": "Top 10 titles per country by hours viewed over the last 7 days.",
    "completion-rate": (
        "Completion rate per title and country, titles released in the last 6 months."
    ),
    "overlapping-sessions": (
        "Members with overlapping sessions (data quality), sessions started on the as-of day."
    ),
}

UNANSWERABLE: Mapping[str, str] = {
    "downgrade-genres": (
        "Most common top genre of members who downgraded their plan last quarter: our events "
        "have no plan-change event, and dim_members keeps only the current plan_tier (no "
        "history), so neither a downgrade nor its date can be found."
    ),
    "streaming-quality": (
        "Global streaming quality analytics (buffering, bitrate, CDN): no playback-quality "
        "events exist in event schema v1."
    ),
    "churn": (
        "Subscriber churn: there are no sign-up, cancellation or billing events, only a "
        "member's signup_date in dim_members."
    ),
}
