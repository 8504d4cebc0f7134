"""Vocabularies shared by the catalog, the event schema and the features: defined once here.

``GENRES`` order is the order of ``genre_affinity_vector``; never reorder it, only append in a
new registry version.
"""

from __future__ import annotations

import re

from recsys.features.definitions import GENRE_COUNT

__all__ = [
    "DEVICES",
    "EVENT_TYPES",
    "GENRES",
    "ID_PATTERN",
    "ISO_COUNTRIES",
    "MATURITY_RATINGS",
    "PLAN_TIERS",
    "id_problem",
]

GENRES: tuple[str, ...] = (
    "action",
    "adventure",
    "animation",
    "comedy",
    "crime",
    "documentary",
    "drama",
    "family",
    "fantasy",
    "horror",
    "music",
    "mystery",
    "romance",
    "sci_fi",
    "sport",
    "thriller",
    "war",
    "western",
)
assert len(GENRES) == GENRE_COUNT, "the genre vocabulary must match the feature registry"

# Lower-case names of recsys.events.v1.Device values (without DEVICE_).
DEVICES: tuple[str, ...] = ("tv", "mobile", "tablet", "web", "console")
# Lower-case names of recsys.events.v1.EventType values (without EVENT_TYPE_).
EVENT_TYPES: tuple[str, ...] = (
    "view",
    "play",
    "pause",
    "complete",
    "rate",
    "search",
    "skip",
    "impression",
)
PLAN_TIERS: tuple[str, ...] = ("basic", "standard", "premium")
MATURITY_RATINGS: tuple[str, ...] = ("all", "7+", "13+", "16+", "18+")

# Member, title and request ids: short, printable, safe in Redis keys and Kafka record keys.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def id_problem(value: str, what: str) -> str | None:
    """What is wrong with an id under ID_PATTERN, for the caller's error message; None if fine."""
    if not value:
        return f"{what} is empty"
    if ID_PATTERN.match(value):
        return None
    shown = value if len(value) <= 40 else value[:40] + "..."
    return (
        f"{what} {shown!r} is malformed: 1-64 characters of letters, digits, '_', '-', "
        "'.' or ':', starting with a letter or digit"
    )


# ISO 3166-1 alpha-2 officially assigned codes.
ISO_COUNTRIES: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """.split()
)
