"""Settings for every service and tool, read from ``RECSYS_``-prefixed environment variables.

One nested section per concern; a nested field is set with a double underscore, the same name the
Helm chart passes::

    RECSYS_KAFKA__PORT=19092 RECSYS_REDIS__HOST=redis recsys infra status

Build settings once in ``main()`` (or a FastAPI lifespan) and pass them down; never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.event_time import MAX_CLOCK_SKEW
from recsys.topics import (
    DEAD_LETTERS,
    EVENTS,
    EXPOSURES,
    LATE_EVENTS,
    SERVED_RECOMMENDATIONS,
    SESSIONS,
)

__all__ = [
    "ApiSettings",
    "CandidatesSettings",
    "CassandraSettings",
    "ExperimentsSettings",
    "FeatureStoreSettings",
    "FeaturesSettings",
    "GrpcServiceSettings",
    "InfraSettings",
    "IngestSettings",
    "KafkaSettings",
    "LakeSettings",
    "LogSettings",
    "MetricsSettings",
    "ModelsSettings",
    "PipelinesSettings",
    "PrometheusSettings",
    "RankerSettings",
    "RedisSettings",
    "ServicesSettings",
    "ServingSettings",
    "Settings",
    "repo_root",
]


def repo_root() -> Path:
    """The checkout this package runs from, or the working directory for an installed wheel."""
    here = Path(__file__).resolve()
    # services/common/recsys/config.py -> the checkout is three levels above the package.
    candidate = here.parents[3]
    if (candidate / "pyproject.toml").is_file() and (candidate / "services").is_dir():
        return candidate
    return Path.cwd()


class KafkaSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(
        default=9093, ge=1, le=65535, description="KRaft controller listener (local infra only)."
    )
    bootstrap_servers: str = Field(
        default="", description="Comma-separated host:port list; empty means host:port."
    )
    client_id: str = "recsys"
    replication_factor: int = Field(default=1, ge=1, description="For topics we create.")
    request_timeout_ms: int = Field(default=10_000, ge=100)
    heap: str = Field(default="768m", description="JVM heap of the local broker.")

    @model_validator(mode="after")
    def _default_bootstrap(self) -> KafkaSettings:
        if not self.bootstrap_servers:
            self.bootstrap_servers = f"{self.host}:{self.port}"
        return self


class CassandraSettings(BaseModel):
    hosts: str = Field(default="127.0.0.1", description="Comma-separated contact points.")
    port: int = Field(default=9042, ge=1, le=65535)
    storage_port: int = Field(
        default=7000, ge=1, le=65535, description="Gossip port (local infra only)."
    )
    keyspace: str = Field(default="recsys", pattern=r"^[a-z][a-z0-9_]{0,47}$")
    local_dc: str = "datacenter1"
    replication_factor: int = Field(default=1, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=2.0, gt=0)
    heap: str = Field(default="1g", description="Maximum JVM heap of the local node.")
    heap_min: str = Field(default="256m", description="Initial JVM heap of the local node.")

    @property
    def contact_points(self) -> list[str]:
        return [h.strip() for h in self.hosts.split(",") if h.strip()]


class RedisSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    socket_timeout_s: float = Field(default=0.05, gt=0)
    max_connections: int = Field(default=64, ge=1)
    key_prefix: str = Field(
        default="rec:v1", description="Namespace of every key; see docs/redis-keys.md."
    )

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


class IngestSettings(BaseModel):
    """The event ingest service (services/ingest)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    api_keys: str = Field(
        default="local-dev-key",
        description="Comma-separated API keys accepted in X-API-Key; the default is for local use.",
    )
    max_batch_events: int = Field(default=500, ge=1, le=10_000)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_event_bytes: int = Field(default=8_192, ge=256)
    produce_timeout_s: float = Field(default=5.0, gt=0, description="Wait for Kafka acks.")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with a 503.")
    topic: str = Field(
        default=EVENTS.name,
        min_length=1,
        description="Kafka topic accepted events go to (tests use their own).",
    )
    producer_batch_bytes: int = Field(
        default=262_144,
        ge=16_384,
        description="Largest Kafka record batch per partition (one produce request carries one "
        "per partition); must hold the largest event.",
    )
    max_requests_in_flight: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="POST /v1/events requests handled at once; beyond it a request gets 503 + "
        "Retry-After at once, its body unread. Each one holds up to max_body_bytes and its "
        "parsed events until Kafka acknowledges or produce_timeout_s passes.",
    )
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Longest time to receive a request's whole body once its headers arrived "
        "(then 408 and the connection is closed): a slow or stalled client cannot hold a slot.",
    )
    max_waiting_batches: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Record batches per partition waiting for the producer (sealed or filling) "
        "before requests with events for that partition get 503; bounds memory while the "
        "producer stalls (at most this plus one request's batches, each up to "
        "producer_batch_bytes).",
    )
    health_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="How often the broker is asked for metadata (readiness, fast 503s).",
    )

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class FeaturesSettings(BaseModel):
    """The real-time feature stream job (services/features); see docs/features.md."""

    app_id: str = Field(
        default="recsys-features",
        pattern=r"^[a-z][a-z0-9_.-]{0,62}$",
        description="Faust app id: the consumer group and the prefix of its changelog topics.",
    )
    events_topic: str = Field(default=EVENTS.name, min_length=1)
    late_topic: str = Field(default=LATE_EVENTS.name, min_length=1)
    sessions_topic: str = Field(default=SESSIONS.name, min_length=1)
    dead_letter_topic: str = Field(
        default=DEAD_LETTERS.name,
        min_length=1,
        description="Where records that cannot be processed go, with the reason in a header.",
    )
    max_clock_skew_s: float = Field(
        default=MAX_CLOCK_SKEW.total_seconds(),
        ge=MAX_CLOCK_SKEW.total_seconds(),
        description="Events more than this ahead of the worker's clock are dead letters, and no "
        "watermark moves past the clock plus this. Never below the ingest API's bound "
        "(recsys.event_time.MAX_CLOCK_SKEW), so nothing ingest accepted is refused here.",
    )
    member_ttl_s: float | None = Field(
        default=None,
        gt=0,
        description="A member silent this long in event time (behind the partition's newest "
        "event) is evicted from the worker's state; empty means the longest TTL of the real-time "
        "user features in the registry (30 days), after which nothing of theirs is served.",
    )
    max_pending_members: int = Field(
        default=50_000,
        ge=1,
        description="Members waiting for one store's write; beyond it the worker stops taking "
        "batches until the store catches up (a store outage holds the stream, never drops it).",
    )
    store_max_backoff_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait between retries of a failing store write.",
    )
    instance_id: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]{0,100}$",
        description="Static consumer-group membership: a worker restarted under the same id "
        "gets its partitions back at once instead of after the session timeout. Must be unique "
        "per worker (`recsys services` uses features-<n>; a StatefulSet, the pod name); empty "
        "means dynamic membership.",
    )
    startup_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a starting worker waits for Cassandra, Redis and Kafka (retrying "
        "with backoff) before it gives up.",
    )
    partitions: int = Field(
        default=EVENTS.partitions,
        ge=1,
        description="Partitions of the events topic; the state changelog is co-partitioned.",
    )
    grace_s: float = Field(
        default=300.0,
        ge=0,
        lt=1800,
        description="Events older than the member's latest event time minus this are late "
        "(kept below the 30 min session gap).",
    )
    dedup_window_s: float = Field(default=3600.0, gt=0, description="event_id memory.")
    batch_max_events: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="Most events the worker folds in one batch (one fetch); a worker that "
        "keeps up folds whatever arrived since its last batch.",
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=5_000,
        description="Longest the broker may hold the worker's fetch when it finds no new "
        "data (Faust's 1,500 ms made some events wait 1.5 s at 1,000 events/s).",
    )
    flush_interval_s: float = Field(
        default=0.1, gt=0, description="How often changed members are written to Redis."
    )
    cassandra_flush_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often changed members are written to Cassandra (the durable copy).",
    )
    flush_max_members: int = Field(
        default=500,
        ge=1,
        description="Members per store write. One Redis script call of 500 members runs about "
        "15 ms in Redis, which serves no reader meanwhile: keep it well under the read budget.",
    )
    redis_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="The worker's Redis socket timeout (its batch writes are not on a request's "
        "path; RECSYS_REDIS__SOCKET_TIMEOUT_S stays the serving one).",
    )
    trending_flush_interval_s: float = Field(
        default=5.0, gt=0, description="How often changed per-country trending counts are written."
    )
    state_cache_members: int = Field(
        default=50_000,
        ge=0,
        description="Decoded member states kept in memory beside the table (LRU; 0 = off; "
        "a few KB each).",
    )
    idle_session_check_s: float = Field(
        default=10.0,
        gt=0,
        description="How often sessions idle past the gap (in event time) are summarised.",
    )
    catalog_refresh_s: float = Field(default=300.0, gt=0)
    commit_interval_s: float = Field(default=1.0, gt=0, description="Kafka offset commits.")
    session_timeout_s: float = Field(
        default=30.0,
        ge=6,
        description="Consumer-group session timeout: how long a dead worker keeps its partitions.",
    )
    data_dir: Path | None = Field(
        default=None, description="Faust local data; empty means <infra.state_dir>/features."
    )


class LakeSettings(BaseModel):
    """The Iceberg lake: a SQL catalog (SQLite by default) over a warehouse folder."""

    warehouse: Path = Field(
        default_factory=lambda: repo_root() / ".recsys" / "lake",
        description="Where the tables' files live; default <RECSYS_INFRA__STATE_DIR>/lake.",
    )
    catalog_uri: str = Field(
        default="",
        description="SQLAlchemy URL of the catalog; empty means SQLite in the warehouse.",
    )
    namespace: str = "recsys"

    @property
    def catalog_url(self) -> str:
        return self.catalog_uri or f"sqlite:///{self.warehouse / 'catalog.db'}"


class PipelinesSettings(BaseModel):
    """The batch pipelines (services/pipelines); see docs/lake.md and docs/batch-features.md."""

    bronze_table: str = Field(
        default="bronze_events", min_length=1, description="The bronze events table to read."
    )
    engine_threads: int = Field(
        default=2, ge=1, le=256, description="DuckDB worker threads (the machine has 2 cores)."
    )
    engine_memory_limit: str = Field(
        default="4GB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB memory limit; above it DuckDB spills to a temporary folder.",
    )
    silver_chunk_rows: int = Field(
        default=2_000_000,
        ge=1,
        le=1_000_000_000,
        description="Bronze rows a silver chunk (one commit per table) reads at most; a day "
        "larger than this is a chunk of its own. About 0.3 KB of memory per row.",
    )
    cassandra_concurrency: int = Field(
        default=64, ge=1, le=1024, description="Feature writes (one batch per entity) in flight."
    )
    max_backfill_days: int = Field(
        default=400, ge=1, le=3660, description="Longest `recsys pipeline backfill` range."
    )


class InfraSettings(BaseModel):
    """Where the local (no-Docker) infrastructure keeps its state and its downloads."""

    state_dir: Path = Field(
        default_factory=lambda: repo_root() / ".recsys",
        description="Data, logs and pid files of the servers `recsys infra` starts (git-ignored).",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "recsys",
        description="Resolved classpaths and tools, shared by every clone on the machine.",
    )
    start_timeout_s: float = Field(default=120.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)


class ServicesSettings(BaseModel):
    """The platform's services as `recsys services up` (and `make up`) runs them locally.

    Each runs as its own process with its own ``/metrics`` port (given to the child as its
    ``RECSYS_METRICS__PORT``), which is also where its readiness is probed.
    """

    features_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Feature stream workers (features-1 ... features-N), one consumer group; "
        "more than the events topic's partitions sit idle.",
    )
    features_metrics_port: int = Field(
        default=9101,
        ge=1,
        le=65535,
        description="/metrics of features-1; features-N listens on this + N - 1.",
    )
    bronze_metrics_port: int = Field(
        default=9100, ge=1, le=65535, description="/metrics of the bronze lake writer."
    )
    # Each service runs under a supervisor (recsys.infra.supervise) that restarts it like
    # Kubernetes' CrashLoopBackOff: the n-th restart in a row waits
    # min(restart_backoff_max_s, restart_backoff_s * 2 ** (n - 1)).
    restart_policy: Literal["always", "on-failure", "never"] = Field(
        default="always",
        description="When a service that exited is started again, as Kubernetes' restartPolicy "
        "(on-failure: not after exit code 0; never: the exit is only recorded).",
    )
    restart_backoff_s: float = Field(
        default=1.0, gt=0, le=300, description="Wait before the first restart in a row."
    )
    restart_backoff_max_s: float = Field(
        default=60.0, gt=0, le=3600, description="Longest wait between restarts."
    )
    restart_reset_after_s: float = Field(
        default=120.0,
        gt=0,
        le=86_400,
        description="A service that ran this long before it exited is restarted after "
        "restart_backoff_s again, not after the next doubled wait.",
    )

    def features_port(self, index: int) -> int:
        """The metrics port of worker ``features-<index>`` (1-based)."""
        if index < 1:
            raise ValueError(f"feature workers are numbered from 1, not {index}")
        return self.features_metrics_port + index - 1

    @model_validator(mode="after")
    def _ports_are_distinct(self) -> ServicesSettings:
        last = self.features_port(self.features_workers)
        if last > 65535:
            raise ValueError(
                f"features_metrics_port {self.features_metrics_port} + {self.features_workers} "
                "workers runs past port 65535"
            )
        if self.features_metrics_port <= self.bronze_metrics_port <= last:
            raise ValueError(
                f"bronze_metrics_port {self.bronze_metrics_port} falls inside the feature "
                f"workers' metrics ports {self.features_metrics_port}-{last}"
            )
        return self

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> ServicesSettings:
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise ValueError(
                f"restart_backoff_max_s {self.restart_backoff_max_s:g} is below "
                f"restart_backoff_s {self.restart_backoff_s:g}"
            )
        return self


class ModelsSettings(BaseModel):
    """The model registry (recsys.models) and what the pipelines publish to it; docs/models.md."""

    root: Path = Field(
        default_factory=lambda: repo_root() / ".recsys" / "models",
        description="Registry root: a versioned directory per model and a `current` pointer per "
        "name (a PersistentVolume in Kubernetes); unset means <infra.state_dir>/models.",
    )
    pointer_history: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Earlier current versions a model's pointer remembers for `rollback`.",
    )
    fallback_top_n: int = Field(
        default=100, ge=1, le=10_000, description="Titles per fallback list."
    )
    fallback_window_days: int = Field(
        default=30,
        ge=1,
        le=3660,
        description="Days of plays and ratings, up to the data's latest day, that rank the "
        "fallback lists.",
    )
    fallback_ttl_s: int = Field(
        default=7 * 86_400,
        ge=60,
        description="Lifetime of a fallback generation in Redis: a later run replaces it, a "
        "stopped pipeline leaves the last one served this long.",
    )
    catchup_timeout_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="How long `recsys pipeline bootstrap` waits for the bronze lake to catch up "
        "with the events topic before it gives up.",
    )


class ServingSettings(BaseModel):
    """What the gRPC serving services (featurestore, candidates, ranker) share; docs/serving.md."""

    reload_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="How often a service reads the registry's `current` pointers of what it "
        "serves; a new version is loaded in the background and swapped in atomically.",
    )
    drain_s: float = Field(
        default=0.0,
        ge=0,
        le=300,
        description="After SIGTERM: health says NOT_SERVING while calls are still answered, so "
        "load balancers stop sending before the listener closes (a few seconds in Kubernetes).",
    )
    grace_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="After the listener closes: how long calls in flight may take to finish.",
    )
    max_concurrent_rpcs: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Calls a server handles at once; beyond it a call gets RESOURCE_EXHAUSTED at "
        "once instead of queueing past its caller's deadline.",
    )
    startup_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a starting service waits for its stores and its first model "
        "versions (retrying) before it exits with the reason.",
    )
    onnx_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="onnxruntime intra-op threads per session (spinning is always off, so the "
        "event loop keeps its core).",
    )


class GrpcServiceSettings(BaseModel):
    """Where a gRPC service listens: each service's section sets its own default ports."""

    host: str = Field(default="127.0.0.1", description="Listen address (0.0.0.0 in a pod).")
    port: int = Field(ge=1, le=65535)
    metrics_port: int = Field(ge=1, le=65535, description="Its /metrics listener.")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class FeatureStoreSettings(GrpcServiceSettings):
    """The feature store service (services/featurestore); docs/featurestore.md."""

    port: int = Field(default=50051, ge=1, le=65535)
    metrics_port: int = Field(default=9201, ge=1, le=65535)
    realtime_cache_ttl_s: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description="L1 (in-process) lifetime of a member's real-time values: a play reaches the "
        "next request within this plus the stream job's write delay (0 = no L1 for them).",
    )
    batch_cache_ttl_s: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="L1 lifetime of a member's daily batch values (they change once a day).",
    )
    cache_max_members: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Members each L1 cache holds at most (least recently used leave first).",
    )
    max_title_ids: int = Field(
        default=1000, ge=1, le=100_000, description="Titles one GetTitleFeatures call may ask for."
    )


class CandidatesSettings(GrpcServiceSettings):
    """The candidates service (services/candidates); docs/candidates.md."""

    port: int = Field(default=50052, ge=1, le=65535)
    metrics_port: int = Field(default=9202, ge=1, le=65535)
    default_limit: int = Field(
        default=500, ge=1, le=10_000, description="Candidates returned when a call asks for 0."
    )
    max_limit: int = Field(default=2000, ge=1, le=100_000)
    max_exclusions: int = Field(
        default=2000, ge=0, le=100_000, description="exclude_title_ids one call may send."
    )
    loaded_versions: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Non-current two-tower versions (pinned by experiments) kept loaded.",
    )


class RankerSettings(GrpcServiceSettings):
    """The ranker service (services/ranker); docs/ranker.md."""

    port: int = Field(default=50053, ge=1, le=65535)
    metrics_port: int = Field(default=9203, ge=1, le=65535)
    max_candidates: int = Field(
        default=2000, ge=1, le=100_000, description="Titles one Rank call may send."
    )
    loaded_versions: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Non-current ranker versions (pinned by experiments) kept loaded.",
    )


class ExperimentsSettings(GrpcServiceSettings):
    """Experiments (services/experiments); docs/experiments.md."""

    config: Path = Field(
        default_factory=lambda: (
            repo_root() / "services" / "experiments" / "config" / "experiments.yaml"
        ),
        description="The experiments configuration (YAML; a ConfigMap in Kubernetes).",
    )
    port: int = Field(default=50054, ge=1, le=65535)
    metrics_port: int = Field(default=9204, ge=1, le=65535)
    config_check_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="How often the configuration file is checked for a change (a new version "
        "is validated first; a bad one leaves the running one serving).",
    )
    exposures_topic: str = Field(
        default=EXPOSURES.name, min_length=1, description="Where every exposure goes."
    )
    exposure_queue: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Exposures waiting for Kafka or Cassandra; beyond it new ones are dropped "
        "and counted (a store outage never slows an answer).",
    )
    recorded_members: int = Field(
        default=200_000,
        ge=1,
        le=10_000_000,
        description="(member, experiment) pairs this process remembers having recorded a first "
        "exposure for, so it does not ask Cassandra again (least recently used leave first).",
    )


class ApiSettings(BaseModel):
    """The recommendation API (services/api); docs/api.md."""

    host: str = Field(default="127.0.0.1", description="Listen address (0.0.0.0 in a pod).")
    port: int = Field(default=8080, ge=1, le=65535)
    budget_ms: float = Field(
        default=100.0,
        gt=0,
        le=10_000,
        description="A request's whole time: every call gets what is left of it, capped by its "
        "stage's share; a stage that cannot fit is skipped by stepping down the ladder.",
    )
    # The caps: seed 004's split of 100 ms (features 15, candidates 20, ranking 40, the rest
    # network and post-processing), each widened by 5 ms of queueing on a busy host; the
    # parallel first stage plus the chain after it still fits: 20 + 25 + 40 + reserve 10 <= 100.
    experiments_ms: float = Field(default=15.0, gt=0, description="Cap of GetAssignments.")
    features_ms: float = Field(default=20.0, gt=0, description="Cap of GetUserFeatures.")
    candidates_ms: float = Field(default=25.0, gt=0, description="Cap of GetCandidates.")
    ranking_ms: float = Field(default=40.0, gt=0, description="Cap of Rank.")
    fallback_ms: float = Field(
        default=10.0, gt=0, description="Cap of reading a fallback list from Redis (level 2)."
    )
    reserve_ms: float = Field(
        default=10.0,
        ge=0,
        description="Time kept back from the calls for post-ranking and the answer.",
    )
    default_k: int = Field(default=10, ge=1, le=100, description="Items when ?k= is absent.")
    default_country: str = Field(
        default="US", pattern=r"^[A-Z]{2}$", description="Country when ?country= is absent."
    )
    default_device: str = Field(default="tv", description="Device when ?device= is absent.")
    max_k: int = Field(default=50, ge=1, le=100, description="Largest ?k= accepted.")
    max_in_flight: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Recommendation requests handled at once; beyond it 429 + Retry-After at "
        "once, instead of queueing past the budget.",
    )
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After sent with a 429.")
    overload_lag_ms: float = Field(
        default=20.0,
        gt=0,
        description="Event-loop lag above which a request skips the personalised stages and is "
        "served the fallback lists (level 2, reason overloaded): cheap answers while saturated.",
    )
    shed_lag_ms: float = Field(
        default=50.0,
        gt=0,
        description="Event-loop lag above which a request is refused with 429 + Retry-After "
        "before routing, instead of queueing past the budget.",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Consecutive failed calls to a dependency that open its circuit breaker.",
    )
    breaker_recovery_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="How long an open breaker skips its dependency before letting calls try.",
    )
    featurestore_target: str = Field(
        default="", description="host:port of the feature store; empty = 127.0.0.1 and its port."
    )
    candidates_target: str = Field(default="", description="As featurestore_target.")
    ranker_target: str = Field(default="", description="As featurestore_target.")
    experiments_target: str = Field(default="", description="As featurestore_target.")
    served_topic: str = Field(
        default=SERVED_RECOMMENDATIONS.name,
        min_length=1,
        description="Where every served list goes (recsys.recommendations.v1 protobuf).",
    )
    impressions_topic: str = Field(
        default=EVENTS.name,
        min_length=1,
        description="Where every served list goes as an impression event (to bronze, training).",
    )
    served_queue: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Served lists waiting for Kafka; beyond it new ones are dropped and counted.",
    )
    assignment_cache_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="How long a member's last assignment stands in when the experiments "
        "service cannot answer (stale-if-error; 0 = never): their variant, not the defaults.",
    )
    assignment_cache_members: int = Field(
        default=100_000, ge=1, le=10_000_000, description="Members whose assignment is kept."
    )
    last_lists: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="Members whose last personalised list this process keeps for the emergency "
        "level (least recently served leave first; 0 = none).",
    )


class PrometheusSettings(BaseModel):
    """The local Prometheus `recsys infra up` runs (Debian's package, the project's config)."""

    host: str = "127.0.0.1"
    port: int = Field(default=9090, ge=1, le=65535)
    scrape_interval_s: int = Field(default=5, ge=1, le=300)
    retention: str = Field(
        default="2d", pattern=r"^[0-9]+[smhdwy]$", description="How long samples are kept."
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "console"


class MetricsSettings(BaseModel):
    port: int = Field(default=0, ge=0, le=65535, description="0 disables the /metrics listener.")


class Settings(BaseSettings):
    """All settings; ``Settings()`` reads the environment (and an optional ``.env``)."""

    model_config = SettingsConfigDict(
        env_prefix="RECSYS_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: Literal["local", "test", "kubernetes"] = "local"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    pipelines: PipelinesSettings = Field(default_factory=PipelinesSettings)
    infra: InfraSettings = Field(default_factory=InfraSettings)
    services: ServicesSettings = Field(default_factory=ServicesSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    featurestore: FeatureStoreSettings = Field(default_factory=FeatureStoreSettings)
    candidates: CandidatesSettings = Field(default_factory=CandidatesSettings)
    ranker: RankerSettings = Field(default_factory=RankerSettings)
    experiments: ExperimentsSettings = Field(default_factory=ExperimentsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @model_validator(mode="after")
    def _local_state_follows_state_dir(self) -> Settings:
        # The lake and the registry live with the rest of the local state (RECSYS_INFRA__STATE_DIR)
        # unless placed elsewhere.
        if "root" not in self.models.model_fields_set:
            self.models.root = self.infra.state_dir / "models"
        if "warehouse" not in self.lake.model_fields_set:
            self.lake.warehouse = self.infra.state_dir / "lake"
        return self
