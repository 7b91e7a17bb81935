"""Berth's settings, read from ``BERTH_*`` environment variables and an optional YAML file.

Every setting is documented in ``docs/CONFIGURATION.md``. Nested settings use ``__`` in the
environment (``BERTH_STORAGE__ROOT``). The YAML file is named by ``BERTH_CONFIG``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_STORE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class StorageSettings(BaseModel):
    """One blob store (docs/CONFIGURATION.md, "Stores"). ``kind`` picks the driver; ``root`` is
    the filesystem driver's folder; every other key is an option of the driver
    (``berth_common.storage.create_driver``: ``bucket``, ``prefix``, ``endpoint``, ``region``,
    ``access_key_file`` … for ``s3``; ``account_name``, ``container``, ``endpoint`` … for ``azure``).

    ``redirect``: for stores that can presign, a blob GET answers ``307`` to a presigned URL
    (clients fetch from the store); ``False`` streams the blob through Berth (for stores clients
    cannot reach). Secrets (keys, passwords) never appear in this object's ``repr``.
    """

    model_config = ConfigDict(extra="allow")

    kind: Literal["filesystem", "s3", "azure"] = "filesystem"
    root: Path = Path("berth-data/storage")
    redirect: bool = True

    def driver_options(self) -> dict[str, Any]:
        """The keyword arguments of ``create_driver(kind, ...)`` for this store."""
        options = dict(self.model_extra or {})
        if self.kind == "filesystem":
            options["root"] = self.root
        return options

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            secret = key is not None and any(w in key for w in ("key", "secret", "password", "token"))
            yield key, "***" if secret and not str(key).endswith("_file") else value


class UploadSettings(BaseModel):
    """Upload sessions: how long an idle session lives before cleanup purges it, how often
    cleanup looks (seconds), and the largest manifest accepted (bytes).

    ``lease_seconds``: a request writing to a session holds its lease this long and renews it
    every third of it; a writer that died loses the session after at most this time.
    ``busy_wait_seconds``: how long a request waits for a session another request is writing
    to before it answers ``429 TOOMANYREQUESTS`` (retryable).
    """

    max_age_seconds: int = Field(default=24 * 3600, ge=60)
    lease_seconds: float = Field(default=10.0, ge=0.3)
    busy_wait_seconds: float = Field(default=10.0, ge=0)
    purge_interval_seconds: float = Field(default=600.0, gt=0)
    max_manifest_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class GcSettings(BaseModel):
    """Online garbage collection (docs/DESIGN.md §5): how long a blob must have been unreferenced
    (``grace_seconds``) before it goes, and how often the collector runs (``interval_seconds``)."""

    enabled: bool = True
    grace_seconds: int = Field(default=3600, ge=0)
    interval_seconds: float = Field(default=3600.0, gt=0)


class HttpSettings(BaseModel):
    """Slow-client limits of Berth's HTTP servers (seconds; docs/CONFIGURATION.md).

    ``header_timeout_seconds``: from a connection's start, or the end of its previous response,
    until a complete request head; otherwise the connection is closed (``408`` if part of a
    head came). ``body_idle_timeout_seconds``: the longest wait for the next piece of a request
    body; otherwise the request fails with ``400`` and the connection is closed.
    """

    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_idle_timeout_seconds: float = Field(default=30.0, gt=0)


class EmbeddedSettings(BaseModel):
    """Where ``berth up``'s embedded services listen (docs/CONFIGURATION.md); unset: NATS on a
    fresh loopback port, PostgreSQL's socket in ``<data_dir>/run``.

    ``nats_port``: the loopback port of the embedded nats-server; ``postgres_socket_dir``: the
    folder of the embedded PostgreSQL's unix socket (new or empty; it is made private to it).
    """

    nats_port: int | None = Field(default=None, ge=1, le=65535)
    postgres_socket_dir: Path | None = None


class DatabaseSettings(BaseModel):
    """PostgreSQL sessions (docs/OPERATIONS.md).

    ``idle_transaction_seconds``: PostgreSQL ends a session of Berth's that stays idle inside a
    transaction this long (``idle_in_transaction_session_timeout``), releasing its locks — so a
    process frozen mid-transaction (SIGSTOP, a VM pause, a hung store call) cannot block other
    pushes of a layer, GC or feed changes for ever. It must exceed the longest store call made
    inside a transaction: the commit of an upload places the blob (an object store's
    server-side copy of a large layer) while it holds the blob's lock. ``0`` turns it off.
    """

    idle_transaction_seconds: float = Field(default=300.0, ge=0)


class BusSettings(BaseModel):
    """The event bus (docs/ARCHITECTURE.md, "Events are the source of truth").

    ``max_message_bytes``: an event whose bus envelope (JSON) would be larger is published
    without its payload (``payload_omitted``) and consumers read it from the event store; the
    bound used is never above the NATS server's ``max_payload`` less a margin for headers.
    ``catch_up_seconds``: how often an idle consumer checks that its durable exists and that
    the event store holds no event of its types beyond its position that the bus never
    delivered (and applies those).
    """

    max_message_bytes: int = Field(default=64 * 1024, ge=4096)
    catch_up_seconds: float = Field(default=30.0, gt=0)


class AuthSettings(BaseModel):
    """Token auth (docs/SECURITY.md): ``service`` is the token audience, ``issuer`` its ``iss``.

    ``token_ttl_seconds``: access token lifetime; ``refresh_ttl_seconds``: refresh tokens;
    ``key_secret``: encrypts signing keys at rest when set; ``failures_per_minute``: failed logins
    allowed per (user name, client address) per minute before ``429``;
    ``address_failures_per_minute``: the same per client address, all user names together;
    ``min_password_length``: the shortest password the admin API accepts for a new user or a
    password change (characters; 400 below it).
    """

    service: str = "berth"
    issuer: str = "berth"
    token_ttl_seconds: int = Field(default=300, ge=60)
    refresh_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    key_secret: str | None = None
    admin_user: str = "admin"
    failures_per_minute: int = Field(default=10, ge=1)
    address_failures_per_minute: int = Field(default=30, ge=1)
    min_password_length: int = Field(default=8, ge=1, le=1024)


class UiSettings(BaseModel):
    """The web UI (``services/ui``, docs/CONFIGURATION.md).

    ``api_url``: where the UI calls the admin and registry APIs when it runs as its own
    service (the ingress or proxy URL, e.g. ``http://proxy``); unset in the all-in-one process,
    which calls its own app in process. ``page_size``: rows per page of its listings.
    """

    api_url: str | None = None
    page_size: int = Field(default=50, ge=5, le=1000)


class TelemetrySettings(BaseModel):
    """Traces (docs/OPERATIONS.md, "Traces"): on when an OTLP endpoint is configured.

    ``otlp_endpoint``: the collector's base URL (``http://collector:4318`` for HTTP,
    ``http://collector:4317`` for gRPC); unset: the SDK's ``OTEL_EXPORTER_OTLP_ENDPOINT``.
    ``otlp_protocol``: ``http/protobuf`` or ``grpc``; unset: ``OTEL_EXPORTER_OTLP_PROTOCOL``,
    else ``http/protobuf``. ``sample_ratio``: the share of new traces recorded (0 to 1; a request
    that arrives with a sampled ``traceparent`` is always recorded). ``instance_id``: the
    ``service.instance.id`` resource attribute; unset: ``<host name>-<pid>``.
    """

    otlp_endpoint: str | None = None
    otlp_protocol: Literal["http/protobuf", "grpc"] | None = None
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    instance_id: str | None = None


class MetricsSettings(BaseModel):
    """``/metrics`` (docs/OPERATIONS.md, "Metrics").

    ``token`` / ``token_file``: when set, ``/metrics`` answers only requests with
    ``Authorization: Bearer <token>`` (the file's content, stripped, for a mounted secret).
    ``feed_labels``: feeds whose bytes in and out get their own ``feed`` label; every other
    feed is counted as ``other`` (bounded cardinality). ``feed_bytes``: count bytes per feed
    at all. ``sample_seconds``: how often gauges read on a timer are refreshed (pool use, open
    upload sessions, certificate expiry). ``tls_certificates``: PEM certificate files whose
    notAfter is exported (``berth up --tls`` adds its own; add an ingress's mounted secret).
    """

    token: str | None = None
    token_file: Path | None = None
    feed_labels: Annotated[list[str], NoDecode] = []
    feed_bytes: bool = True
    sample_seconds: float = Field(default=5.0, gt=0)
    tls_certificates: Annotated[list[Path], NoDecode] = []

    @field_validator("feed_labels", "tls_certificates", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> list[str]:
        """Accept ``"a,b"`` (the environment) or a list (YAML)."""
        items = value.split(",") if isinstance(value, str) else list(value or [])
        return [str(i).strip() for i in items if str(i).strip()]

    def bearer_token(self) -> str | None:
        """The token ``/metrics`` requires, or ``None``.

        Raises:
            OSError: ``token_file`` cannot be read.
        """
        if self.token:
            return self.token
        return self.token_file.read_text().strip() if self.token_file else None


class ConnectorSettings(BaseModel):
    """Connectors to upstream registries (docs/CONFIGURATION.md, docs/ARCHITECTURE.md "Connectors").

    ``key``: Fernet keys (urlsafe base64, 32 bytes) that encrypt upstream passwords at rest,
    comma-separated: the first encrypts, every one decrypts (rotation). ``key_file``: a file of
    such keys, one a line (same order rule); read when ``key`` is unset. Neither set:
    ``<data_dir>/secrets/connectors.key`` if it exists (``berth up`` makes it).
    ``timeout_seconds``: connect and read timeout of each upstream request.
    ``fetch_lease_seconds``: a fetch's single-flight lease, renewed every third of it; a fetch
    whose process died is taken over after at most this long. ``fetch_wait_seconds``: how long
    a pull waits for another process's fetch of the same object before ``503 UNAVAILABLE``.
    """

    key: str | None = None
    key_file: Path | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    fetch_lease_seconds: float = Field(default=15.0, ge=0.3)
    fetch_wait_seconds: float = Field(default=600.0, gt=0)


class Settings(BaseSettings):
    """All of Berth's settings.

    Attributes:
        database_url: PostgreSQL URL (asyncpg); unset means ``berth up`` starts an embedded one.
        nats_url: NATS URL; unset means ``berth up`` starts an embedded nats-server.
        nats_stream: the JetStream stream that carries events (subjects ``<prefix>.>``).
        nats_subject_prefix: the subject prefix; events go to ``<prefix>.<aggregate>.<event>``.
        data_dir: where ``berth up`` keeps embedded PostgreSQL, NATS and filesystem storage.
        external_url: the URL clients see (``Location`` headers); unset means derive from the request.
        trusted_proxies: IPs/CIDRs whose ``X-Forwarded-*`` headers are believed (default loopback);
            the environment takes a comma-separated list (``BERTH_TRUSTED_PROXIES=10.0.0.0/8,::1``).
        default_feed: the feed that serves names whose first component is not a feed (Docker Hub
            mirror mode: ``library/busybox``, ``pause``); unset: such names are unknown.
        relay_poll_seconds: how often the outbox relay looks for new events when not notified.
        log_level, log_format: structlog output (``console`` or ``json``).
        migrate_on_start: each service applies its schema migrations when it starts; with
            ``false`` it waits until they are applied (by ``berth migrate``, e.g. a Kubernetes
            Job run before the rollout) instead.
    """

    model_config = SettingsConfigDict(env_prefix="BERTH_", env_nested_delimiter="__", extra="ignore")

    database_url: str | None = None
    nats_url: str | None = None
    nats_stream: str = "BERTH_EVENTS"
    nats_subject_prefix: str = "berth"
    data_dir: Path = Path("berth-data")
    external_url: str | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = ["127.0.0.0/8", "::1/128"]
    storage: StorageSettings = StorageSettings()
    stores: dict[str, StorageSettings] = {}
    uploads: UploadSettings = UploadSettings()
    gc: GcSettings = GcSettings()
    bus: BusSettings = BusSettings()
    auth: AuthSettings = AuthSettings()
    http: HttpSettings = HttpSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    ui: UiSettings = UiSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    metrics: MetricsSettings = MetricsSettings()
    migrate_on_start: bool = True

    connectors: ConnectorSettings = ConnectorSettings()
    default_feed: str | None = None
    admin_password: str | None = None  # BERTH_ADMIN_PASSWORD: the first admin's password
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    database: DatabaseSettings = DatabaseSettings()
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=20, ge=1)
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    access_log: bool = True

    def store_settings(self) -> dict[str, StorageSettings]:
        """Every configured store by name: ``default`` is ``storage`` unless ``stores`` names one.

        Feeds choose a store by name (``berth feed create --store S``); feeds created before
        named stores existed live in ``default`` under ``feeds/<feed>/``.
        """
        return {"default": self.storage, **self.stores}

    @field_validator("stores")
    @classmethod
    def _store_names(cls, value: dict[str, StorageSettings]) -> dict[str, StorageSettings]:
        """Store names are lowercase ``[a-z0-9][a-z0-9_-]*`` (they appear in keys and paths)."""
        for name in value:
            if not _STORE_NAME.fullmatch(name):
                raise ValueError(f"invalid store name {name!r}: lowercase letters, digits, '-' and '_'")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> list[str]:
        """Accept ``"a, b"`` or a list; normalise each to a network (``10.0.0.0/8``).

        Raises:
            ValueError: for an entry that is not an IP address or CIDR.
        """
        items = value.split(",") if isinstance(value, str) else list(value or [])
        return [str(ipaddress.ip_network(str(i).strip(), strict=False)) for i in items if str(i).strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: constructor arguments, then environment, then the YAML file."""
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``BERTH_CONFIG`` (if any) as the lowest-precedence source."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("BERTH_CONFIG")
        if not path:
            return {}
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the configuration file must be a YAML mapping")
        return data
