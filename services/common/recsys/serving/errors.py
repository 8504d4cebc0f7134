"""Errors a handler raises to answer a call with a status code and a message that says why."""

from __future__ import annotations

import re
from collections.abc import Sequence

import grpc

from recsys.catalog import ID_PATTERN, id_problem

__all__ = [
    "ID_PATTERN",
    "RpcError",
    "check_country",
    "check_id",
    "check_ids",
    "deadline_exceeded",
    "invalid",
    "not_found",
]

# Member and title ids: the rule the ingest API applies (recsys.catalog.ID_PATTERN).
_ID = ID_PATTERN.pattern.removeprefix("^").removesuffix("$")
# Many ids joined by newlines, checked in one match: 500 ids cost ~20 us instead of ~0.5 ms.
_IDS = re.compile(rf"{_ID}(?:\n{_ID})*")


class RpcError(Exception):
    """Answer the call with ``code`` and ``message`` (the handler wrapper aborts with them)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, message)


def deadline_exceeded(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def check_id(value: str, what: str) -> str:
    problem = id_problem(value, what)
    if problem is not None:
        raise invalid(problem)
    return value


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def check_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code's shape (two capitals), else INVALID_ARGUMENT."""
    if not _COUNTRY.match(value):
        raise invalid(f"country {value!r} is not an ISO 3166-1 alpha-2 code (two capitals)")
    return value


def check_ids(values: Sequence[str], what: str, *, limit: int) -> list[str]:
    """The ids, each well-formed, at most ``limit`` of them (else INVALID_ARGUMENT)."""
    if len(values) > limit:
        raise invalid(f"{len(values)} {what} in one call; at most {limit}")
    ids = list(values)
    joined = "\n".join(ids)
    # The count rules out an id that itself holds a newline passing as two.
    if ids and (_IDS.fullmatch(joined) is None or joined.count("\n") != len(ids) - 1):
        for i, value in enumerate(ids):
            check_id(value, f"{what}[{i}]")
    return ids
