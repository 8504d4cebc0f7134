"""Checks on the dates an operator passes: today is the last day there can be data for."""

from __future__ import annotations

from datetime import UTC, date, datetime

from recsys_pipelines.errors import PipelineError

__all__ = ["add_months", "check_not_future", "today_utc"]


def today_utc() -> date:
    return datetime.now(UTC).date()


def check_not_future(day: date, what: str = "date") -> date:
    """``day``, or a PipelineError when it is after today (UTC): no event can be from then."""
    today = today_utc()
    if day > today:
        raise PipelineError(f"{what} {day} is in the future (today is {today} UTC)")
    return day


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to a shorter month's end (Mar 31 - 1 = Feb 28)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has at least 28 days")
