"""Arrow rows as a plain text table for the terminal (no Rich: the CLI stays light)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["format_table"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value)
    return str(value)


def format_table(rows: pa.Table, columns: list[str] | None = None) -> str:
    """Left-aligned text, numbers right-aligned, one header line and a rule under it."""
    names = columns or rows.column_names
    body = [[_cell(v) for v in row.values()] for row in rows.select(names).to_pylist()]
    numeric = [
        all(isinstance(v, (int, float)) for v in rows.column(n).to_pylist() if v is not None)
        and rows.num_rows > 0
        for n in names
    ]
    widths = [max([len(n), *(len(r[i]) for r in body)]) for i, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(names), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in body)
    return "\n".join(out)
