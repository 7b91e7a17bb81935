"""``berth up`` and ``berth serve``: run Berth (all of it on one machine, or one service).

``berth up`` runs everything on one machine with embedded PostgreSQL and NATS (unless
``database_url`` / ``nats_url`` — environment or configuration file — point at existing ones)
and writes
``<data-dir>/run.json``, through which the other commands find it (``berth.client``).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from berth import connector_cli, store_url
from berth.client import DEFAULT_DATA_DIR, connection
from berth.runfile import RunInfo

if TYPE_CHECKING:
    from berth.embedded import EmbeddedServices
    from berth.tls import TlsFiles

console = Console(stderr=True)

SERVICES = {
    "all": "berth.allinone:create_app",
    "api": "berth_api.app:create_app",
    "blob": "berth_blob.app:create_app",
    "auth": "berth_auth.app:create_app",
    "gc": "berth_gc.app:create_app",
    "ui": "berth_ui.app:create_app",  # the web UI; needs BERTH_UI__API_URL, no database
    "proxy": "berth.proxy:create_app",  # path routing to separately served api/blob/auth/gc/ui
}

Host = Annotated[str, typer.Option(metavar="ADDRESS", help="address to listen on")]
Port = Annotated[int, typer.Option(metavar="PORT", help="port to listen on")]
Workers = Annotated[int, typer.Option(metavar="N", help="server processes")]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="BERTH_DATA_DIR",
        metavar="DIR",
        help="where embedded PostgreSQL, NATS and blobs live (default: berth-data)",
    ),
]


def up(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 5000,
    data_dir: DataDir = None,
    workers: Workers = 1,
    tls: Annotated[
        bool, typer.Option("--tls", metavar="", help="serve HTTPS (private CA in <data-dir>/tls)")
    ] = False,
    tls_name: Annotated[
        list[str] | None,
        typer.Option(
            "--tls-name",
            metavar="NAME",
            help="certificate host name or IP (repeatable; default localhost, 127.0.0.1)",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(metavar="FILE", help="your own certificate (PEM; implies TLS)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(metavar="FILE", help="your own private key (PEM)")] = None,
    nats_port: Annotated[
        int | None,
        typer.Option(metavar="PORT", help="embedded NATS: this loopback port (default: a free one)"),
    ] = None,
    postgres_socket_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="embedded PostgreSQL: its unix socket in this new or empty folder (default <data-dir>/run)",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="the default blob store: s3://BUCKET[/PREFIX]?endpoint=URL (keys from AWS_ACCESS_KEY_ID"
            " and AWS_SECRET_ACCESS_KEY), azure://ACCOUNT/CONTAINER[/PREFIX] (AZURE_STORAGE_KEY) or a"
            " folder (default <data-dir>/storage)",
        ),
    ] = None,
) -> None:
    """Run all of Berth on this machine, with embedded PostgreSQL and NATS where none is configured.

    The embedded services are restarted (with backoff, a log line each time) when they die.

    Example: berth up --port 5000 --data-dir /srv/berth --tls
    Example: AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… berth up --store "s3://blobs/berth?endpoint=http://127.0.0.1:9000"
    """
    from berth import tls as tls_setup
    from berth.embedded import EmbeddedServiceError

    data_dir = data_dir or connection(ctx).data_dir_or_default
    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so the
    # ``finally`` below still stops embedded PostgreSQL and NATS.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    connector_cli.ensure_local_key(data_dir)  # connector passwords encrypted at rest
    try:
        tls_files = tls_setup.configure(
            data_dir, enabled=tls, names=tls_name or [], host=host, cert=tls_cert, key=tls_key
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _require_free_port(host, port)
    if store is not None:
        _use_store(store)
    if tls_files:  # its expiry is exported (berth_tls_certificate_expiry_timestamp_seconds)
        _watch_certificate(tls_files.cert)
    database_url, nats_url = configured_services()
    want_pg, want_nats = database_url is None, nats_url is None
    console.print(f"[dim]starting embedded services in {data_dir} …[/dim]")
    try:
        embedded = _embedded(data_dir, want_pg, want_nats, port, nats_port, postgres_socket_dir)
        endpoints = embedded.start()
    except EmbeddedServiceError as exc:
        console.print(f"[red]berth up: {exc}[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    embedded.supervise()
    try:
        # the workers read their settings again: the environment carries what was decided here
        os.environ["BERTH_DATABASE_URL"] = database_url or endpoints.database_url
        os.environ["BERTH_NATS_URL"] = nats_url or endpoints.nats_url
        os.environ.setdefault("BERTH_STORAGE__ROOT", str(data_dir / "storage"))
        os.environ["BERTH_DATA_DIR"] = str(data_dir)
        client = _client_host(host, tls_files)
        url = f"{'https' if tls_files else 'http'}://{client}:{port}"
        RunInfo(
            url=url,
            database_url=os.environ["BERTH_DATABASE_URL"],
            nats_url=os.environ["BERTH_NATS_URL"],
            pid=os.getpid(),
        ).write(data_dir)
        blobs = store_url.describe(
            {k.removeprefix(store_url.ENV_PREFIX).lower(): v for k, v in os.environ.items()
             if k.startswith(store_url.ENV_PREFIX)}
        )  # fmt: skip
        _announce_when_listening(client, port, lambda: _banner(url, data_dir, tls_files, blobs))
        _serve(SERVICES["all"], host, port, workers, tls_files)
    finally:
        # A second Ctrl-C (the terminal and ``uv run`` both deliver one) must not interrupt
        # the shutdown of PostgreSQL and NATS.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        RunInfo.remove(data_dir)
        embedded.stop()
        console.print("[dim]stopped[/dim]")


def _use_store(url: str) -> None:
    """Make ``url`` the default store for this process and its workers (``BERTH_STORAGE__*``,
    replacing any such variables); checked before anything starts.

    Raises:
        typer.BadParameter: the URL or the store's options are invalid, or a credential is
            missing (the message names the variable, never a value).
    """
    try:
        environment = store_url.store_environment(url, dict(os.environ))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--store") from None
    for key in [k for k in os.environ if k.startswith(store_url.ENV_PREFIX)]:
        del os.environ[key]
    os.environ.update(environment)


def configured_services() -> tuple[str | None, str | None]:
    """``(database_url, nats_url)`` as configured — environment first, then the YAML file of
    ``BERTH_CONFIG`` (docs/CONFIGURATION.md) — or ``None`` for each that ``berth up`` must
    start embedded.

    Raises:
        pydantic.ValidationError: the configuration is invalid.
    """
    from berth_common.settings import Settings

    settings = Settings()
    return settings.database_url, settings.nats_url


def _embedded(
    data_dir: Path, want_pg: bool, want_nats: bool, port: int, nats_port: int | None, socket_dir: Path | None
) -> EmbeddedServices:
    """The embedded services of ``berth up``: pinned by the options, else by ``embedded.*``
    settings (environment, YAML), else wherever is free.

    Raises:
        EmbeddedServiceError: a pinned folder cannot be used.
        typer.BadParameter: the pinned NATS port is the port Berth serves on.
    """
    from berth.embedded import EmbeddedServices
    from berth_common.settings import Settings

    pinned = Settings().embedded
    nats_port = nats_port or pinned.nats_port
    if want_nats and nats_port == port:
        raise typer.BadParameter(f"the NATS port {nats_port} is the port Berth serves on (--port)")
    return EmbeddedServices(
        data_dir,
        want_postgres=want_pg,
        want_nats=want_nats,
        avoid_ports=frozenset({port}),
        nats_port=nats_port,
        postgres_socket_dir=socket_dir or pinned.postgres_socket_dir,
    )


def _watch_certificate(cert: Path) -> None:
    """Add ``cert`` to ``BERTH_METRICS__TLS_CERTIFICATES`` (read by every worker's settings)."""
    listed = [c for c in os.environ.get("BERTH_METRICS__TLS_CERTIFICATES", "").split(",") if c.strip()]
    os.environ["BERTH_METRICS__TLS_CERTIFICATES"] = ",".join([*listed, str(cert)])


def _client_host(host: str, tls_files: TlsFiles | None) -> str:
    """The host clients should use: ``host``, or for a wildcard address (``0.0.0.0``, ``::``)
    the certificate's first name with TLS and ``127.0.0.1`` without."""
    from berth import tls as tls_setup

    if tls_files:
        return tls_setup.client_host(host, tls_files)
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _announce_when_listening(
    host: str, port: int, announce: Callable[[], None], timeout: float = 600.0
) -> None:
    """Call ``announce`` (from a daemon thread) once ``host:port`` accepts TCP connections.

    uvicorn listens only after the app's startup (migrations, keys, the admin user), so "Berth is
    running" printed before ``_serve`` would send scripts and users to a port that refuses
    connections for seconds. Probes every 0.1 s with a bare connect (no request, so nothing in
    the access log) for at most ``timeout`` s; prints nothing if the server never listens (its
    own error says why).
    """
    import socket
    import threading
    import time

    def wait_then_announce() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, port), timeout=2.0).close()
            except OSError:
                time.sleep(0.1)
                continue
            announce()
            return

    threading.Thread(target=wait_then_announce, name="berth-up-announce", daemon=True).start()


def _banner(url: str, data_dir: Path, tls_files: TlsFiles | None, blobs: str = "") -> None:
    """Print "Berth is running", where blobs go, how to trust its TLS certificate, and the first
    commands to run (with ``BERTH_DATA_DIR`` / ``SSL_CERT_FILE`` when the CLI needs them to find
    this server)."""
    from berth import tls as tls_setup

    host_port = url.split("://", 1)[1]
    console.print(f"[bold green]Berth is running at {url}[/bold green]  (Ctrl-C stops it)")
    if blobs:
        console.print(f"  blobs: {blobs}", soft_wrap=True, markup=False, highlight=False)
    if tls_files:
        console.print(tls_setup.trust_instructions(tls_files, host_port), soft_wrap=True, markup=False)
    exports = ["    export BERTH_ADMIN_PASSWORD=..."]
    if data_dir != DEFAULT_DATA_DIR.resolve():
        exports.append(f"    export BERTH_DATA_DIR={data_dir}")
    if tls_files and tls_files.ca:
        exports.append(f"    export SSL_CERT_FILE={tls_files.ca}")
    tls_flag = "--dest-cert-dir DIR" if tls_files else "--dest-tls-verify=false"
    console.print(
        "  next, in another shell (use the admin password printed when the data dir was"
        " first created, or the BERTH_ADMIN_PASSWORD you set):\n" + "\n".join(exports) + "\n"
        "    uv run berth feed create myfeed\n"
        f'    skopeo copy {tls_flag} --dest-creds "admin:$BERTH_ADMIN_PASSWORD" '
        f"docker://docker.io/library/busybox:latest docker://{host_port}/myfeed/busybox:latest",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


def _require_free_port(host: str, port: int) -> None:
    """Fail before anything starts (and before "Berth is running" is printed) when ``host:port``
    cannot be bound, e.g. because another server listens there. Raises ``typer.Exit(1)``."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        console.print(
            f"[red]berth up: cannot listen on {host}:{port}: {exc.strerror or exc}"
            " (another server there? choose one with --port)[/red]",
            highlight=False,
        )
        raise typer.Exit(1) from None


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(
    service: Annotated[str, typer.Argument(metavar="SERVICE", hidden=True)],
    host: Host = "127.0.0.1",
    port: Port = 5000,
    workers: Workers = 1,
    api: Annotated[
        str | None,
        typer.Option(metavar="URL[,URL…]", help="proxy only: api service URL(s), replicas comma-separated"),
    ] = None,
    blob: Annotated[
        str | None,
        typer.Option(metavar="URL[,URL…]", help="proxy only: blob service URL(s), replicas comma-separated"),
    ] = None,
    auth: Annotated[str | None, typer.Option(metavar="URL", help="proxy only: auth service URL")] = None,
    gc: Annotated[str | None, typer.Option(metavar="URL", help="proxy only: gc service URL")] = None,
    ui: Annotated[str | None, typer.Option(metavar="URL", help="proxy only: ui service URL")] = None,
) -> None:
    """Serve one service (or all) against configured PostgreSQL and NATS (BERTH_* settings).

    SERVICE is api, blob, auth, gc, ui, all or proxy; "proxy" routes by path to separately served
    services (--api, --blob, --auth, --gc, --ui); "ui" needs only BERTH_UI__API_URL (the proxy's
    or ingress's URL), no database.

    Example:

    \b
      export BERTH_DATABASE_URL=postgresql://berth@db/berth BERTH_NATS_URL=nats://nats:4222
      berth serve all --port 5000
    """
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
    if service == "proxy":  # needs no database: only the services' URLs
        _proxy_environment(api=api, blob=blob, auth=auth, gc=gc, ui=ui)
        _serve(SERVICES[service], host, port, workers)
        return
    if service == "ui":  # stateless: calls the APIs at BERTH_UI__API_URL
        _serve(SERVICES[service], host, port, workers)
        return
    if not os.environ.get("BERTH_DATABASE_URL") and not os.environ.get("BERTH_CONFIG"):
        console.print(
            "[red]BERTH_DATABASE_URL is not set: berth serve needs PostgreSQL and NATS"
            " (BERTH_NATS_URL); use berth up for embedded defaults[/red]"
        )
        raise typer.Exit(2)
    _serve(SERVICES[service], host, port, workers)


def _proxy_environment(**urls: str | None) -> None:
    """Put ``--api/--blob/--auth/--gc/--ui`` into ``BERTH_PROXY_*`` (read by ``berth.proxy.create_app``)."""
    for name, url in urls.items():
        if url:
            os.environ[f"BERTH_PROXY_{name.upper()}"] = url
        elif name not in ("gc", "ui") and not os.environ.get(f"BERTH_PROXY_{name.upper()}"):
            raise typer.BadParameter(f"berth serve proxy needs --{name} URL")


def _serve(factory: str, host: str, port: int, workers: int, tls: TlsFiles | None = None) -> None:
    """Run uvicorn; HTTPS with ``tls``. Forwarded headers are Berth's (``berth_common.http.urls``,
    trusted proxies only), so uvicorn's own ``proxy_headers`` (trusting loopback always) is off."""
    import uvicorn

    from berth_common.http.protocols import uvicorn_http_protocol
    from berth_common.logging import configure_logging

    configure_logging()
    # Several workers: prometheus-client's multiprocess mode, so /metrics adds up all of them
    # (each worker writes its values to files here; the folder lives as long as this server).
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="berth-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http=uvicorn_http_protocol("httptools"),
            loop="uvloop",
            log_level="warning",
            proxy_headers=False,
            timeout_graceful_shutdown=10,
            access_log=False,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
        )
    finally:
        if metrics_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
