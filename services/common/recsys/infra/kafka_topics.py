"""Create the declared topics and bring existing ones in line; running it twice changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from recsys.infra.server import InfraError
from recsys.topics import TopicSpec

__all__ = ["TopicChange", "ensure_topics"]


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
        _raise_on_errors("create topics", getattr(response, "topic_errors", []))
        changes += [TopicChange(s.name, "created") for s in missing]
    present = [s for s in specs if s.name in existing]
    if present:
        changes += await _reconcile(admin, present)
    return sorted(changes, key=lambda c: c.topic)


async def _reconcile(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[TopicChange]:
    partitions = {
        t["topic"]: len(t["partitions"])
        for t in await admin.describe_topics([s.name for s in specs])
    }
    configs = await _topic_configs(admin, [s.name for s in specs])
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
        wanted = spec.configs()
        drift = {k: v for k, v in wanted.items() if configs.get(spec.name, {}).get(k) != v}
        if drift:
            alter.append(ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=wanted))
            notes.append(
                "configs updated: " + ", ".join(f"{k}={v}" for k, v in sorted(drift.items()))
            )
        changes.append(TopicChange(spec.name, "; ".join(notes) or "unchanged"))
    if grow:
        response = await admin.create_partitions(grow)
        _raise_on_errors("add partitions", getattr(response, "topic_errors", []))
    if alter:
        for response in await admin.alter_configs(alter):
            _raise_on_errors("alter configs", getattr(response, "resources", []))
    return changes


async def _topic_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    out: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error_code, _message, _type, name, entries = resource[:5]
            if error_code:
                raise InfraError(f"describe configs of {name} failed with error code {error_code}")
            out[name] = {entry[0]: entry[1] for entry in entries}
    return out


def _raise_on_errors(what: str, errors: Sequence[Any]) -> None:
    # Responses carry (name, error_code[, message]) tuples; 0 means success.
    failed = [e for e in errors if len(e) > 1 and e[1]]
    if failed:
        raise InfraError(f"{what} failed: {failed}")
