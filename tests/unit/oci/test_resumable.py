"""Resumable SHA-256 (``berth_common.oci.resumable``): saved states resume to hashlib's digest."""

from __future__ import annotations

import hashlib
import random

import pytest

from berth_common.oci.resumable import AVAILABLE, STATE_BYTES, ResumableSha256

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="libcrypto is part of every supported Python")


def test_libcrypto_is_found_here() -> None:
    """CI must exercise the real thing, not the re-hash fallback."""
    assert AVAILABLE


@pytest.mark.parametrize("cuts", [[], [0], [1], [63], [64], [65], [1, 2, 3], [100, 4000, 64 * 1024 + 7]])
def test_saved_and_resumed_equals_hashlib(cuts: list[int]) -> None:
    data = random.Random(len(cuts)).randbytes(200_000)
    resumed, start = ResumableSha256(), 0
    for cut in cuts:
        resumed.update(data[start : start + cut])
        start += cut
        saved = resumed.state()
        assert len(saved) == STATE_BYTES
        resumed = ResumableSha256(saved)  # as the next PATCH in another process would
        assert resumed.length == start
    resumed.update(data[start:])
    assert resumed.hexdigest() == hashlib.sha256(data).hexdigest()


def test_digest_does_not_consume_the_state() -> None:
    h = ResumableSha256()
    h.update(b"abc")
    assert h.hexdigest() == h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    twin = h.copy()
    h.update(b"def")
    assert twin.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert h.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x01", b"\x02" + bytes(STATE_BYTES - 1), bytes(STATE_BYTES)],
)
def test_malformed_states_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        ResumableSha256(bad)


def test_a_tampered_fill_is_refused() -> None:
    h = ResumableSha256()
    h.update(b"x" * 10)
    state = bytearray(h.state())
    state[-8] = 11  # num (little-endian u32) no longer matches the bit count
    with pytest.raises(ValueError):
        ResumableSha256(bytes(state))
