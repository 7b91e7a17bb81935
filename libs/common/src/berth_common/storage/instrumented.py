"""``InstrumentedDriver``: any ``StorageDriver`` with an OpenTelemetry span, a latency metric and
an error counter around every operation.

Metrics: ``berth_storage_operation_seconds{driver,operation}`` (prometheus-client ``Histogram``)
and ``berth_storage_operation_errors_total{driver,operation,error}`` (``error``: the exception's
class name, e.g. ``StorageBackendError``, ``OSError``; cancellations and a reader closed early
are not errors);
spans: ``storage.<operation>`` from tracer ``berth.storage`` with ``storage.driver``,
``storage.operation``, ``storage.path`` and, where known, ``storage.bytes`` attributes.
For ``read`` and ``list`` the span and the timing cover the whole iteration.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from .base import ObjectInfo, PendingWrite, StorageDriver, Writer, WriterState

_T = TypeVar("_T")
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_HISTOGRAMS: dict[int, Histogram] = {}
_ERRORS: dict[int, Counter] = {}


def operation_histogram(registry: CollectorRegistry = REGISTRY) -> Histogram:
    """The one ``berth_storage_operation_seconds`` histogram of ``registry`` (created on first use)."""
    key = id(registry)
    if key not in _HISTOGRAMS:
        _HISTOGRAMS[key] = Histogram(
            "berth_storage_operation_seconds",
            "Duration of storage driver operations, in seconds.",
            ["driver", "operation"],
            buckets=_BUCKETS,
            registry=registry,
        )
    return _HISTOGRAMS[key]


def error_counter(registry: CollectorRegistry = REGISTRY) -> Counter:
    """The one ``berth_storage_operation_errors_total`` counter of ``registry`` (made on first use)."""
    key = id(registry)
    if key not in _ERRORS:
        _ERRORS[key] = Counter(
            "berth_storage_operation_errors_total",
            "Storage driver operations that raised, by driver, operation and exception class.",
            ["driver", "operation", "error"],
            registry=registry,
        )
    return _ERRORS[key]


class InstrumentedDriver:
    """Wraps ``inner`` (same protocol, same errors); pass ``tracer_provider``/``registry`` in tests."""

    def __init__(
        self,
        inner: StorageDriver,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._tracer = trace.get_tracer("berth.storage", tracer_provider=tracer_provider)
        self._histogram = operation_histogram(registry)
        self._errors = error_counter(registry)

    def _attributes(self, operation: str, path: str) -> dict[str, Any]:
        return {"storage.driver": self.name, "storage.operation": operation, "storage.path": path}

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:  # not BaseException: cancellation and GeneratorExit are no errors
            self._errors.labels(self.name, operation, type(exc).__name__).inc()
            raise
        finally:
            self._histogram.labels(self.name, operation).observe(time.perf_counter() - start)

    async def _call(self, operation: str, path: str, awaitable: Awaitable[_T]) -> _T:
        attributes = self._attributes(operation, path)
        with (
            self._timed(operation),
            self._tracer.start_as_current_span(f"storage.{operation}", attributes=attributes) as span,
        ):
            result = await awaitable
            if isinstance(result, int) and not isinstance(result, bool):
                span.set_attribute("storage.bytes", result)
            return result

    async def _iterate(self, operation: str, path: str, source: AsyncIterator[_T]) -> AsyncIterator[_T]:
        # Not a *current* span: it would leak into the consumer's context between yields.
        span = self._tracer.start_span(f"storage.{operation}", attributes=self._attributes(operation, path))
        with self._timed(operation):
            try:
                async for item in source:
                    yield item
            except GeneratorExit:
                raise
            except BaseException as exc:
                _fail(span, exc)
                raise
            finally:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
                span.end()

    async def stat(self, path: str) -> ObjectInfo | None:
        """See ``StorageDriver.stat``."""
        return await self._call("stat", path, self.inner.stat(path))

    def read(
        self, path: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """See ``StorageDriver.read``."""
        return self._iterate("read", path, self.inner.read(path, offset, length, chunk_size))

    async def write(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        """See ``StorageDriver.write``."""
        return await self._call("write", path, self.inner.write(path, chunks))

    async def writer(self, path: str, resume: WriterState | None = None) -> Writer:
        """See ``StorageDriver.writer``; the writer's ``write``/``flush``/``commit``/``cancel``
        are timed as ``writer_write`` … operations."""
        inner = await self._call("writer", path, self.inner.writer(path, resume))
        return _InstrumentedWriter(self, inner)

    async def move(self, src: str, dst: str) -> None:
        """See ``StorageDriver.move``; the span's ``storage.path`` is ``src``."""
        await self._call("move", src, self.inner.move(src, dst))

    async def delete(self, path: str) -> None:
        """See ``StorageDriver.delete``."""
        await self._call("delete", path, self.inner.delete(path))

    async def delete_objects(self, paths: Sequence[str]) -> None:
        """See ``StorageDriver.delete_objects``."""
        await self._call("delete", paths[0] if paths else "", self.inner.delete_objects(paths))

    def list(self, prefix: str) -> AsyncIterator[str]:
        """See ``StorageDriver.list``."""
        return self._iterate("list", prefix, self.inner.list(prefix))

    async def url_for(
        self,
        path: str,
        *,
        method: str = "GET",
        expires_in: int = 1200,
        external_host: str | None = None,
    ) -> str | None:
        """See ``StorageDriver.url_for``."""
        signed = self.inner.url_for(path, method=method, expires_in=expires_in, external_host=external_host)
        return await self._call("url_for", path, signed)

    def list_created(self, prefix: str, since: datetime | None) -> AsyncIterator[ObjectInfo]:
        """See ``StorageDriver.list_created``."""
        return self._iterate("list", prefix, self.inner.list_created(prefix, since))

    def pending(self, prefix: str) -> AsyncIterator[PendingWrite]:
        """See ``StorageDriver.pending``."""
        return self._iterate("pending", prefix, self.inner.pending(prefix))

    async def abort_pending(self, pending: PendingWrite) -> None:
        """See ``StorageDriver.abort_pending``."""
        await self._call("abort_pending", pending.path, self.inner.abort_pending(pending))

    def local_path(self, path: str) -> Path | None:
        """See ``StorageDriver.local_path`` (not traced: no I/O)."""
        return self.inner.local_path(path)

    async def close(self) -> None:
        """Close the wrapped driver."""
        await self._call("close", "", self.inner.close())


def _fail(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class _InstrumentedWriter:
    """A ``Writer`` whose operations are timed and traced like the driver's (``writer_<op>``)."""

    def __init__(self, driver: InstrumentedDriver, inner: Writer) -> None:
        self._driver, self._inner, self.path = driver, inner, inner.path

    @property
    def size(self) -> int:
        """See ``Writer.size``."""
        return self._inner.size

    async def write(self, data: bytes) -> None:
        """See ``Writer.write`` (timed only: a span per chunk would flood traces)."""
        with self._driver._timed("writer_write"):
            await self._inner.write(data)

    async def flush(self) -> WriterState:
        """See ``Writer.flush``."""
        return await self._driver._call("writer_flush", self.path, self._inner.flush())

    async def commit(self) -> None:
        """See ``Writer.commit``."""
        await self._driver._call("writer_commit", self.path, self._inner.commit())

    async def cancel(self) -> None:
        """See ``Writer.cancel``."""
        await self._driver._call("writer_cancel", self.path, self._inner.cancel())

    async def close(self) -> None:
        """See ``Writer.close``."""
        await self._inner.close()
