"""End-to-end freshness: from a play posted to the ingest API to the next recommendation that
reflects it, on the running system (``make up``), with background traffic.

    make bench-freshness                                  # 100 members, simulator at 100/s
    make bench-freshness BENCH_ARGS="--members 300 --concurrency 10 --simulator-rate 200"

For each member (``u0000001``... spread over the world): ask the API for their list, post a
play of its first title through the ingest API (``POST /v1/events``, the client SDK's path),
then ask again every ``--poll-ms`` until the answer no longer holds the played title and differs
from the one before. The time from posting the play to that answer is the freshness of one
member; ``--concurrency`` members are measured at once, and background load comes from the
simulator (``--simulator-rate`` events/s) and, optionally, from ``--background-rps``
recommendation requests per second. It prints p50/p90/p99/max and how many members were not
reflected within ``--timeout`` s. The path measured: ingest → Kafka → feature worker (Redis,
every 100 ms) → feature store (L1 cache ``RECSYS_FEATURESTORE__REALTIME_CACHE_TTL_S``, 0.5 s)
→ candidates (leaves out recently watched titles) → API. Only answers at level 0 count: a play
cannot show in a fallback list.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import httpx
import numpy as np
from background_traffic import simulator

from recsys.clients.ingest import IngestClient
from recsys.config import Settings


async def _recommend(client: httpx.AsyncClient, member: str, country: str) -> dict | None:  # type: ignore[type-arg]
    response = await client.get(
        f"/v1/recommendations/{member}", params={"k": 10, "country": country}
    )
    if response.status_code != 200:
        return None
    body = response.json()
    return body if body["level"] == 0 else None


async def _one(
    api: httpx.AsyncClient, ingest: IngestClient, member: str, args: argparse.Namespace
) -> float | None:
    """Seconds from the play's post to a changed answer; None on timeout or no level-0 list."""
    before = None
    for _ in range(20):
        before = await _recommend(api, member, args.country)
        if before is not None and before["items"]:
            break
        await asyncio.sleep(0.1)
    if before is None or not before["items"]:
        return None
    played = before["items"][0]["id"]
    shown = [i["id"] for i in before["items"]]
    posted = time.perf_counter()
    outcome = await ingest.send(
        [
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "play",
                "user_id": member,
                "title_id": played,
                "occurred_at": time.time_ns() // 1_000_000,
                "device": "tv",
                "country": args.country,
                "position_sec": 0,
            }
        ]
    )
    if outcome.accepted != 1:
        raise RuntimeError(f"the play was not accepted: {outcome.status} {outcome.body}")
    deadline = posted + args.timeout
    while time.perf_counter() < deadline:
        await asyncio.sleep(args.poll_ms / 1000)
        after = await _recommend(api, member, args.country)
        if after is None:
            continue
        ids = [i["id"] for i in after["items"]]
        if played not in ids and ids != shown:
            return time.perf_counter() - posted
    return None


async def _background(api: httpx.AsyncClient, rps: float, stop: asyncio.Event) -> None:
    i = 0
    running: set[asyncio.Task[object]] = set()  # referenced until done
    while not stop.is_set():
        i += 1
        task = asyncio.create_task(_recommend(api, f"u{1000 + i % 5000:07d}", "US"))
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.sleep(1 / rps)
    await asyncio.gather(*running, return_exceptions=True)


async def _main(args: argparse.Namespace) -> int:
    settings = Settings()
    api_url = f"http://{settings.api.host}:{settings.api.port}"
    key = sorted(settings.ingest.api_key_set)[0]
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=5) as api,
        IngestClient(settings.ingest.url, api_key=key, max_wait_s=10) as ingest,
    ):
        try:
            ready = await api.get("/readyz")
        except httpx.HTTPError as exc:
            print(f"the API at {api_url} does not answer ({exc}); start the system with `make up`")
            return 2
        if ready.status_code != 200:
            print(f"the API at {api_url} is not ready: {ready.text}")
            return 2
        stop = asyncio.Event()
        background = (
            asyncio.create_task(_background(api, args.background_rps, stop))
            if args.background_rps > 0
            else None
        )
        members = [f"u{n * args.stride + 1:07d}" for n in range(args.members)]
        gate = asyncio.Semaphore(args.concurrency)
        done = 0

        async def measured(member: str) -> float | None:
            nonlocal done
            async with gate:
                result = await _one(api, ingest, member, args)
            done += 1
            if done % max(1, args.members // 10) == 0:
                print(f"  {done}/{args.members} members measured", flush=True)
            return result

        print(
            f"{args.members} members, {args.concurrency} at a time, polling every "
            f"{args.poll_ms} ms; background: simulator {args.simulator_rate:g} events/s, "
            f"{args.background_rps:g} recommendation requests/s"
        )
        started = time.perf_counter()
        results = await asyncio.gather(*(measured(m) for m in members))
        stop.set()
        if background is not None:
            await background
    seconds = [r for r in results if r is not None]
    missed = len(results) - len(seconds)
    elapsed = time.perf_counter() - started
    print(f"\nplay posted -> changed recommendation, {len(seconds)} members ({elapsed:.0f} s):")
    if seconds:
        ms = np.asarray(seconds) * 1000
        print(
            f"  p50 {np.percentile(ms, 50):.0f} ms  p90 {np.percentile(ms, 90):.0f} ms  "
            f"p99 {np.percentile(ms, 99):.0f} ms  max {ms.max():.0f} ms"
        )
    print(f"  not reflected within {args.timeout:g} s (or no level-0 answer): {missed}")
    print("  target: p99 <= 2000 ms")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--stride", type=int, default=7, help="member n is u(n*stride+1)")
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--poll-ms", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per member")
    parser.add_argument("--country", default="US")
    parser.add_argument("--simulator-rate", type=float, default=100.0, help="0: none")
    parser.add_argument("--background-rps", type=float, default=20.0, help="0: none")
    args = parser.parse_args()
    if args.members < 1 or args.concurrency < 1 or args.poll_ms < 1 or args.timeout <= 0:
        parser.error("--members, --concurrency, --poll-ms and --timeout must be positive")
    with simulator(rate=args.simulator_rate, duration_s=3600):
        code = asyncio.run(_main(args))
    sys.exit(code)


if __name__ == "__main__":
    main()
