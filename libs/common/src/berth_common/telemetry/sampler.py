"""Gauges read on a timer: database pool use, TLS certificate expiry, and service samplers.

``sample_forever`` runs in every Berth process (started by ``service_app``), each
``metrics.sample_seconds``: it sets ``berth_db_pool_connections{state}`` and
``berth_db_pool_max_connections`` from the process's asyncpg pool, the notAfter of each
certificate in ``metrics.tls_certificates`` (so a certificate replaced on disk shows its new
date), and runs the extra samplers a service registered on ``Resources.samplers`` (the blob
service counts open upload sessions). A failing sampler is logged and tried again next time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import asyncpg
import structlog
from cryptography import x509

from berth_common.telemetry.metrics import POOL_CONNECTIONS, POOL_MAX, TLS_EXPIRY

log = structlog.get_logger("berth.telemetry")
Sampler = Callable[[], Awaitable[None]]


def sample_pool(pool: asyncpg.Pool) -> None:
    """Set the pool gauges: connections in use (checked out) and idle, and the maximum."""
    size, idle = pool.get_size(), pool.get_idle_size()
    POOL_CONNECTIONS.labels("in_use").set(size - idle)
    POOL_CONNECTIONS.labels("idle").set(idle)
    POOL_MAX.set(pool.get_max_size())


def certificate_expiry(path: Path) -> float:
    """The notAfter of the first certificate in PEM file ``path``, as Unix time (seconds).

    Raises:
        OSError: the file cannot be read. ValueError: it holds no PEM certificate.
    """
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.not_valid_after_utc.timestamp()


def sample_certificates(paths: Iterable[Path]) -> None:
    """Set ``berth_tls_certificate_expiry_timestamp_seconds`` for each readable certificate."""
    for path in paths:
        try:
            TLS_EXPIRY.labels(str(path)).set(certificate_expiry(path))
        except (OSError, ValueError) as exc:
            log.warning("metrics.certificate_unreadable", certificate=str(path), error=repr(exc))


async def sample_once(
    pool: asyncpg.Pool | None, certificates: Iterable[Path], samplers: Iterable[Sampler]
) -> None:
    """One round of every sampler (pool, certificates, the registered ones)."""
    if pool is not None:
        sample_pool(pool)
    sample_certificates(certificates)
    for sampler in samplers:
        try:
            await asyncio.wait_for(sampler(), 10.0)
        except Exception as exc:
            log.warning("metrics.sampler_failed", sampler=getattr(sampler, "__name__", "?"), error=repr(exc))


async def sample_forever(
    pool: asyncpg.Pool | None,
    certificates: Iterable[Path],
    samplers: Iterable[Sampler],
    interval: float,
) -> None:
    """``sample_once`` now and every ``interval`` seconds until cancelled."""
    certificates = list(certificates)
    while True:
        with contextlib.suppress(Exception):  # a sampler bug must never stop the others
            await sample_once(pool, certificates, samplers)
        await asyncio.sleep(interval)
