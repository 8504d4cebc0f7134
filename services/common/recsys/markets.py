"""The markets of the synthetic world: where members live, what they speak, their clock offset.

A small fixed table rather than all of ISO 3166: twenty countries are enough to make
per-country availability, trending and fallback lists differ, and every code is a real one
(checked against ``recsys.catalog.ISO_COUNTRIES`` in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LANGUAGES", "LANGUAGE_WEIGHTS", "MARKETS", "Market"]


@dataclass(frozen=True, slots=True)
class Market:
    country: str  # ISO 3166-1 alpha-2
    member_share: float  # relative; normalised by the generator
    utc_offset_min: int  # standard time; good enough for time-of-day patterns
    languages: tuple[str, ...]  # ISO 639-1, main language first


MARKETS: tuple[Market, ...] = (
    Market("US", 0.28, -300, ("en", "es")),
    Market("GB", 0.07, 0, ("en",)),
    Market("CA", 0.05, -300, ("en", "fr")),
    Market("DE", 0.06, 60, ("de",)),
    Market("FR", 0.05, 60, ("fr",)),
    Market("ES", 0.04, 60, ("es",)),
    Market("IT", 0.03, 60, ("it",)),
    Market("NL", 0.02, 60, ("nl",)),
    Market("SE", 0.015, 60, ("sv",)),
    Market("PL", 0.02, 60, ("pl",)),
    Market("BR", 0.08, -180, ("pt",)),
    Market("MX", 0.05, -360, ("es",)),
    Market("AR", 0.02, -180, ("es",)),
    Market("IN", 0.06, 330, ("hi", "en")),
    Market("JP", 0.04, 540, ("ja",)),
    Market("KR", 0.03, 540, ("ko",)),
    Market("AU", 0.03, 600, ("en",)),
    Market("TR", 0.015, 180, ("tr",)),
    Market("ZA", 0.01, 120, ("en",)),
    Market("NG", 0.01, 60, ("en",)),
)

# Original audio language of titles: English-heavy, as catalogs are, with the big non-English
# production languages (Korean and Japanese series, Hindi and Spanish films) well represented.
LANGUAGE_WEIGHTS: dict[str, float] = {
    "en": 0.55,
    "es": 0.07,
    "ja": 0.06,
    "ko": 0.06,
    "hi": 0.05,
    "fr": 0.05,
    "de": 0.03,
    "it": 0.03,
    "pt": 0.03,
    "tr": 0.02,
    "zh": 0.02,
    "sv": 0.01,
    "nl": 0.01,
    "pl": 0.01,
}
LANGUAGES: tuple[str, ...] = tuple(LANGUAGE_WEIGHTS)
