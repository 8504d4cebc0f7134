"""Create the declared topics and bring existing ones in line; running it twice changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from recsys.infra.server import InfraError
from recsys.topics import TopicSpec

__all__ = ["TopicChange", "ensure_topics"]

# Kafka protocol error codes
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicChange:
    topic: str
    action: str  # "created", "unchanged", "partitions 3 -> 6", "configs updated: ..."


async def ensure_topics(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], *, replication_factor: int
) -> list[TopicChange]:
    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    changes: list[TopicChange] = []
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.configs())
                for s in missing
            ]
        )
        results = {t: code for t, code, *_ in response.topic_errors}
        # Another creator (or a retried request of ours) may have won the race: reconcile it.
        raced = {t for t, code in results.items() if code == TOPIC_ALREADY_EXISTS}
        _raise_on_errors("create topics", [(t, c) for t, c in results.items() if t not in raced])
        existing |= raced
        created = [s for s in missing if s.name not in raced]
        # The controller has accepted them; wait until the broker's metadata shows them too.
        await _await_applied(admin, created)
        changes += [TopicChange(s.name, "created") for s in created]
    present = [s for s in specs if s.name in existing]
    if present:
        changes += await _reconcile(admin, present)
    return sorted(changes, key=lambda c: c.topic)


async def _reconcile(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[TopicChange]:
    partitions, configs = await _observe(admin, specs)
    changes: list[TopicChange] = []
    grow: dict[str, NewPartitions] = {}
    alter: list[ConfigResource] = []
    for spec in specs:
        notes: list[str] = []
        have = partitions.get(spec.name, 0)
        if have < spec.partitions:
            grow[spec.name] = NewPartitions(spec.partitions)
            notes.append(f"partitions {have} -> {spec.partitions}")
        elif have > spec.partitions:
            # Kafka cannot shrink a topic; shrinking would also reshuffle keys across partitions.
            raise InfraError(
                f"topic {spec.name} has {have} partitions but {spec.partitions} are declared; "
                "partitions cannot be removed (recreate the topic or raise the declaration)"
            )
        drift = _drift(spec, configs)
        if drift:
            # AlterConfigs replaces the topic's whole set: send every declared config.
            alter.append(
                ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=spec.configs())
            )
            notes.append(
                "configs updated: " + ", ".join(f"{k}={v}" for k, v in sorted(drift.items()))
            )
        changes.append(TopicChange(spec.name, "; ".join(notes) or "unchanged"))
    if grow:
        response = await admin.create_partitions(grow)
        _raise_on_errors("add partitions", [(t, code) for t, code, *_ in response.topic_errors])
    if alter:
        for response in await admin.alter_configs(alter):
            _raise_on_errors(
                "alter configs", [(name, code) for code, _msg, _type, name in response.resources]
            )
    if grow or alter:
        await _await_applied(admin, specs)
    return changes


async def _observe(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    names = [s.name for s in specs]
    partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    return partitions, await _topic_configs(admin, names)


def _drift(spec: TopicSpec, configs: dict[str, dict[str, str]]) -> dict[str, str]:
    have = configs.get(spec.name, {})
    return {k: v for k, v in spec.configs().items() if have.get(k) != v}


async def _await_applied(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], timeout_s: float = 15.0
) -> None:
    """Return once the brokers' metadata shows the changes (KRaft propagates them async)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        partitions, configs = await _observe(admin, specs)
        pending = [
            s.name for s in specs if partitions.get(s.name, 0) < s.partitions or _drift(s, configs)
        ]
        if not pending:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise InfraError(
                f"topic changes were accepted but not visible after {timeout_s}s: {pending}"
            )
        await asyncio.sleep(0.2)


async def _topic_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    out: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error_code, _message, _type, name, entries = resource[:5]
            if error_code == UNKNOWN_TOPIC_OR_PARTITION:
                continue  # created an instant ago and not in this broker's metadata yet
            if error_code:
                raise InfraError(f"describe configs of {name} failed with error code {error_code}")
            out[name] = {entry[0]: entry[1] for entry in entries}
    return out


def _raise_on_errors(what: str, results: Sequence[tuple[str, int]]) -> None:
    """Raise with every (name, error code) pair whose code is not 0 (success)."""
    failed = [(name, code) for name, code in results if code]
    if failed:
        raise InfraError(f"{what} failed (topic, Kafka error code): {failed}")
