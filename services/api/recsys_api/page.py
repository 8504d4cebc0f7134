"""The web page at ``/``: pick or type a member, see their row, play a title, watch it change.

One static HTML file with its script (no build step, no external assets). Playing a title posts
``POST /v1/demo/plays``, which the API forwards to the ingest API as a play event with the
configured key, so the page needs no key and no cross-origin access.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

__all__ = ["PAGE"]

PAGE: Final = files("recsys_api").joinpath("page.html").read_text(encoding="utf-8")
