"""The bus envelope's size rule (``berth_common.eventstore.envelopes``; docs/EVENTS.md).

One rule for every event: the payload travels inline only when the encoded envelope is at
most the bound, else ``payload_omitted``; should that still be too large, the metadata goes
too. Messages of an older Berth (``body_omitted``) count as omitted.
"""

from __future__ import annotations

from typing import Any

import pytest

from berth_common.eventstore.envelopes import bus_envelope, encode, is_omitted


def envelope(payload: dict[str, Any], request_id: str = "r1") -> dict[str, Any]:
    return {
        "position": 7,
        "stream": "feed:f",
        "version": 1,
        "type": "feed.updated",
        "schema_version": 1,
        "event_id": "00000000-0000-0000-0000-000000000007",
        "recorded_at": "2026-01-01T00:00:00+00:00",
        "metadata": {"actor": "alice", "request_id": request_id},
        "payload": payload,
    }


def test_small_envelope_is_unchanged() -> None:
    small = envelope({"feed": "f", "changes": {}})
    assert bus_envelope(small, 4096) == small
    assert not is_omitted(small)


@pytest.mark.parametrize("limit", [1024, 4096, 65536])
def test_large_payload_is_omitted_and_the_message_fits(limit: int) -> None:
    large = envelope({"feed": "f", "changes": {"description": "x" * 2 * limit}})
    out = bus_envelope(large, limit)
    assert len(encode(out)) <= limit
    assert out["payload_omitted"] is True and "payload" not in out
    assert {k: v for k, v in out.items() if k != "payload_omitted"} == {
        k: v for k, v in large.items() if k != "payload"
    }
    assert is_omitted(out)


def test_oversized_metadata_goes_too() -> None:
    huge = envelope({"feed": "f", "changes": {}}, request_id="r" * 10_000)
    out = bus_envelope(huge, 4096)
    assert len(encode(out)) <= 4096
    assert out["payload_omitted"] and out["metadata_omitted"] and "metadata" not in out
    assert out["position"] == 7 and out["type"] == "feed.updated"


def test_messages_of_an_older_berth_with_body_omitted_count_as_omitted() -> None:
    legacy = envelope({"repository": "f/i", "body": ""}) | {"body_omitted": True}
    assert is_omitted(legacy)
