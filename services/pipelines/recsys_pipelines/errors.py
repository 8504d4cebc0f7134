"""The one exception the pipelines raise for a problem the operator can fix.

The command line prints its message as one line and exits 1; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

__all__ = ["PipelineError"]


class PipelineError(Exception):
    """Bad input or missing prerequisites (a table, a day, a date in the future): one line."""
