"""structlog configuration shared by every service (``BERTH_LOG_LEVEL``, ``BERTH_LOG_FORMAT``).

Every line written while a span is current carries its ``trace_id`` and ``span_id`` (hex, as
trace backends show them), so a log line leads to its trace.
"""

from __future__ import annotations

import logging
import os

import structlog


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Route structlog and stdlib logging to stderr, as console lines or JSON."""
    from berth_common.telemetry.tracing import add_trace_ids

    level = (level or os.environ.get("BERTH_LOG_LEVEL", "INFO")).upper()
    fmt = fmt or os.environ.get("BERTH_LOG_FORMAT", "console")
    renderer = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_trace_ids,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.error").addFilter(_quiet_tls_probes)


def _quiet_tls_probes(record: logging.LogRecord) -> bool:
    """Drop uvicorn's warning for a TLS handshake on a plain-HTTP port.

    skopeo, podman and docker try HTTPS first on every registry and fall back to HTTP on
    loopback; each probe would otherwise log "Invalid HTTP request received." (the client gets
    its 400 all the same).
    """
    return record.getMessage() != "Invalid HTTP request received."
