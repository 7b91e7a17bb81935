"""``InstrumentedDriver`` passes the shared suite unchanged and records spans and latencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from berth_common.storage import FilesystemDriver, InstrumentedDriver, ObjectNotFound, StorageDriver
from tests.drivers.suite import DriverSuite, chunks_of, list_all, read_all
from tests.drivers.test_filesystem import everything_under

REGISTRY = CollectorRegistry()


class TestInstrumentedFilesystemDriver(DriverSuite):
    """The whole suite through the wrapper: it must change no behaviour."""

    @pytest.fixture
    async def driver(self, tmp_path: Path) -> AsyncIterator[StorageDriver]:
        driver = InstrumentedDriver(FilesystemDriver(tmp_path / "store"), registry=REGISTRY)
        yield driver
        await driver.close()

    async def leftovers(self, driver: StorageDriver) -> list[str]:
        assert isinstance(driver, InstrumentedDriver) and isinstance(driver.inner, FilesystemDriver)
        return await anyio.to_thread.run_sync(everything_under, driver.inner.root)


async def test_spans_and_histogram(tmp_path: Path) -> None:
    exporter, registry = InMemorySpanExporter(), CollectorRegistry()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    driver = InstrumentedDriver(FilesystemDriver(tmp_path), tracer_provider=provider, registry=registry)

    assert driver.name == "filesystem"
    assert await driver.write("a/obj", chunks_of(b"hello")) == 5
    assert await read_all(driver, "a/obj") == b"hello"
    assert await list_all(driver, "") == ["a/obj"]
    with pytest.raises(ObjectNotFound):
        await read_all(driver, "missing")
    await driver.delete("a")

    spans = {(s.name, dict(s.attributes or {})["storage.path"]): s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        ("storage.write", "a/obj"), ("storage.read", "a/obj"), ("storage.list", ""),
        ("storage.read", "missing"), ("storage.delete", "a"),
    }  # fmt: skip
    write_attributes = dict(spans["storage.write", "a/obj"].attributes or {})
    assert write_attributes["storage.bytes"] == 5 and write_attributes["storage.driver"] == "filesystem"
    assert spans["storage.read", "missing"].status.status_code is StatusCode.ERROR
    assert spans["storage.read", "a/obj"].status.status_code is StatusCode.UNSET

    def count(operation: str) -> float | None:
        labels = {"driver": "filesystem", "operation": operation}
        return registry.get_sample_value("berth_storage_operation_seconds_count", labels)

    assert (count("write"), count("read"), count("list"), count("delete")) == (1, 2, 1, 1)


async def test_early_exit_from_read_ends_span(tmp_path: Path) -> None:
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    driver = InstrumentedDriver(FilesystemDriver(tmp_path), tracer_provider=provider, registry=REGISTRY)
    await driver.write("obj", chunks_of(b"x" * 100))
    stream = driver.read("obj", chunk_size=10)
    assert await stream.__anext__() == b"x" * 10
    await stream.aclose()  # type: ignore[attr-defined]
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "storage.read"]
    assert span.status.status_code is StatusCode.UNSET
    await driver.delete("obj")


async def test_errors_are_counted_by_operation_and_class(tmp_path: Path) -> None:
    """``berth_storage_operation_errors_total``: failed operations count, a reader closed early
    does not (the storage-errors alert, deploy/prometheus/rules.yaml, rests on it)."""
    registry = CollectorRegistry()
    driver = InstrumentedDriver(FilesystemDriver(tmp_path), registry=registry)
    await driver.write("obj", chunks_of(b"x" * 100))
    with pytest.raises(ObjectNotFound):
        await read_all(driver, "missing")
    stream = driver.read("obj", chunk_size=10)
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]

    def errors(operation: str) -> float | None:
        labels = {"driver": "filesystem", "operation": operation, "error": "ObjectNotFound"}
        return registry.get_sample_value("berth_storage_operation_errors_total", labels)

    reads = {"driver": "filesystem", "operation": "read"}
    assert errors("read") == 1  # the early close was timed, not counted as an error
    assert registry.get_sample_value("berth_storage_operation_seconds_count", reads) == 2
