"""``berth events tail`` lines: manifest bodies left out, long lists cut, omitted payloads said."""

from __future__ import annotations

from berth.ops_cli import format_event

ENVELOPE = {
    "position": 12,
    "stream": "repository:big/img",
    "version": 1,
    "type": "manifest.pushed",
    "recorded_at": "2026-12-06T12:00:00.123456+00:00",
    "metadata": {"actor": "alice"},
}


def test_body_left_out_and_long_lists_cut() -> None:
    blobs = [f"sha256:{i:064x}" for i in range(37_448)]
    line = format_event({**ENVELOPE, "payload": {"repository": "big/img", "body": "{…}", "blobs": blobs}})
    assert line.startswith("      12 2026-12-06T12:00:00.123 manifest.pushed")
    assert "repository:big/img@1 alice" in line and '"body"' not in line
    assert blobs[2] in line and blobs[3] not in line and "… 37448 items" in line
    assert len(line) < 400


def test_short_lists_are_printed_whole() -> None:
    line = format_event({**ENVELOPE, "payload": {"blobs": ["a", "b", "c", "d"]}})
    assert '"blobs":["a","b","c","d"]' in line


def test_an_omitted_payload_that_could_not_be_read_is_said() -> None:
    line = format_event({**ENVELOPE, "payload_omitted": True})
    assert "payload omitted from the bus message" in line and "BERTH_DATABASE_URL" in line
