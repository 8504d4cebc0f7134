"""Plain-text summaries the commands print: pure functions of the reports, so tests read them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from recsys_datagen.importers.runner import ImportReport
from recsys_datagen.importers.source import SourceData
from recsys_datagen.sender import SendStats
from recsys_datagen.simulator import SimulationReport, Snapshot

__all__ = [
    "format_counter",
    "format_latency",
    "import_lines",
    "parse_lines",
    "progress_line",
    "send_lines",
    "simulation_lines",
]


def format_counter(counts: Counter[str] | Counter[int], limit: int = 8) -> str:
    items = counts.most_common(limit)
    text = ", ".join(f"{key} ({n})" for key, n in items)
    rest = len(counts) - len(items)
    return text + (f", and {rest} more" if rest > 0 else "")


def format_latency(stats: SendStats) -> str:
    pct = stats.latency_percentiles()
    if not pct:
        return "no answers"
    return ", ".join(f"p{p} {v * 1000:.1f} ms" for p, v in pct.items()) + " per batch"


def send_lines(stats: SendStats) -> list[str]:
    statuses = ", ".join(f"{code} x{n}" for code, n in sorted(stats.statuses.items()))
    lines = [
        f"  sent       {stats.events + stats.failed} events in {stats.batches} batches"
        + (f" ({stats.retried_batches} retried)" if stats.retried_batches else ""),
        f"  ingest     accepted {stats.accepted}, rejected {stats.rejected}, "
        f"failed {stats.failed} (no answer)" + (f"; HTTP {statuses}" if statuses else ""),
        f"  latency    {format_latency(stats)}",
    ]
    if stats.reasons:
        lines.append(f"  reasons    {format_counter(stats.reasons)}")
    return lines


def progress_line(snapshot: Snapshot) -> str:
    s = snapshot.stats
    rate = snapshot.handed_out / snapshot.elapsed_s if snapshot.elapsed_s > 0 else 0.0
    pct = s.latency_percentiles()
    latency = f"  p50 {pct[50] * 1000:.1f} ms  p99 {pct[99] * 1000:.1f} ms" if pct else ""
    return (
        f"  {snapshot.elapsed_s:7.1f}s  sent {snapshot.handed_out} ({rate:.0f}/s)  "
        f"accepted {s.accepted}  rejected {s.rejected}  failed {s.failed}  "
        f"in flight {snapshot.in_flight}{latency}"
    )


def simulation_lines(report: SimulationReport) -> list[str]:
    cfg = report.config
    kinds = report.kinds
    lines = [
        f"simulated {report.pacing_s:.1f} s at a target of {cfg.rate:g} events/s",
        f"  rate       {report.handed_out} events handed out, {report.rate:.1f} events/s "
        f"({report.rate_error * 100:+.2f} % of target); "
        f"all answered after {report.elapsed_s:.1f} s",
        f"  kinds      normal {kinds['normal']}, late {kinds['late']}, duplicate "
        f"{kinds['duplicate']}, malformed {kinds['malformed']}",
        f"  sessions   {report.sessions} (of which {report.warm_sessions} warm-start)",
    ]
    if report.defects:
        lines.append(f"  defects    {format_counter(report.defects, limit=10)}")
    return lines + send_lines(report.stats)


def parse_lines(data: SourceData, *, show_issues: int = 10) -> list[str]:
    first = datetime.fromtimestamp(int(data.timestamp.min()), UTC) if data.ratings else None
    last = datetime.fromtimestamp(int(data.timestamp.max()), UTC) if data.ratings else None
    users_file = (
        f" (users file: {data.users_in_file} lines)" if data.users_in_file is not None else ""
    )
    lines = [
        f"{data.format} at {data.path}",
        f"  ratings    {data.ratings} read from {data.rating_lines} lines of "
        f"{data.ratings_file.name} ({data.issues.by_file[data.ratings_file.name]} bad)",
        f"  movies     {len(data.movies)} read from {data.movie_lines} lines of "
        f"{data.movies_file.name} ({data.issues.by_file[data.movies_file.name]} bad)",
        f"  users      {data.users} with ratings{users_file}",
    ]
    if first and last:
        lines.append(f"  time       {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC")
    unknown = len(set(data.movie_keys) - {m.key for m in data.movies})
    if unknown:
        lines.append(f"  note       {unknown} rated movies are not in {data.movies_file.name}")
    if data.issues.count:
        lines.append(f"  bad lines  {data.issues.count}: {format_counter(data.issues.by_kind)}")
        lines += [f"    {issue}" for issue in data.issues.first[:show_issues]]
        if data.issues.count > show_issues:
            lines.append(f"    ... and {data.issues.count - show_issues} more")
    if data.issues.warning_count:
        lines.append(f"  warnings   {data.issues.warning_count} lines had bytes replaced:")
        lines += [f"    {w}" for w in data.issues.warnings[:show_issues]]
    return lines


def import_lines(report: ImportReport) -> list[str]:
    lines = [f"  events     {report.events_built} built ({report.send_seconds:.1f} s)"]
    if report.unmapped_genres:
        lines.append(f"  genres     dropped unknown: {format_counter(report.unmapped_genres)}")
    if report.store is not None:
        where = " and ".join(report.store.seconds) or "nowhere"
        seconds = ", ".join(f"{k} {v:.1f} s" for k, v in report.store.seconds.items())
        lines.append(
            f"  catalog    {report.titles} titles, {report.members} members stored in {where} "
            f"({seconds}; {report.store.cassandra_deleted} stale rows removed)"
        )
    if report.send is not None:
        lines += send_lines(report.send)
    return lines
