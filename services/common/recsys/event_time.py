"""The event-time policy every stage that reads ``occurred_at`` shares.

Clients stamp events with their own clock. A clock that runs a little ahead is normal; one that
runs hours ahead would move event time (watermarks, windows, sessions) into the future for
everyone who shares a partition, so the platform bounds it:

- the ingest API refuses an ``occurred_at`` later than its clock plus :data:`MAX_CLOCK_SKEW`;
- the feature job sends such events (written to Kafka by anything else) to the dead-letter topic
  and never lets a watermark pass its own clock plus its bound
  (``RECSYS_FEATURES__MAX_CLOCK_SKEW_S``, never below this one), as a stream engine bounds
  out-of-orderness (docs/features.md, "Time").

The bound is no longer than the feature job's 5 minute grace period, so an event as far ahead as
allowed cannot make a member's on-time events late.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["EARLIEST_OCCURRED_AT", "MAX_CLOCK_SKEW"]

# Real MovieLens ratings from 1995 are imported through the ingest API with their timestamps.
EARLIEST_OCCURRED_AT: Final = datetime(1995, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
