"""The upload session's state in memory (``berth_blob.domain``), no database, no store.

docs/ARCHITECTURE.md, "Storage", upload sessions: a lease carries the session's recorded
state (size, hash state, writer state); a writer resumes from it; the running digest resumes
from the saved hash state or, when none is trustworthy, is left to a re-hash at the commit;
the bytes of a chunk are counted against what its headers declared.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable

import pytest

from berth_blob.domain.sessions import Lease, LeaseLost
from berth_blob.domain.streams import Metered, rechunk
from berth_blob.domain.uploads import _resume_hash, range_header
from berth_common.errors import RangeInvalid, SizeInvalid
from berth_common.http.errors import wire_error
from berth_common.oci.resumable import AVAILABLE, ResumableSha256
from berth_common.storage import WriterState


def lease(size: int = 0, hash_state: bytes | None = None, writer: dict[str, object] | None = None) -> Lease:
    return Lease("u1", "t1", 30.0, size, hash_state, writer, 0, False, "inc", "fs:default")


@pytest.mark.parametrize(("size", "header"), [(0, "0-0"), (1, "0-0"), (2, "0-1"), (1024, "0-1023")])
def test_range_header_is_the_inclusive_range_received(size: int, header: str) -> None:
    assert range_header(size) == header


def test_a_fresh_session_has_nothing_to_resume() -> None:
    assert lease().resume_state() is None


def test_recorded_state_is_what_the_next_writer_resumes_from() -> None:
    held = lease()
    held.recorded(100, b"h" * 8, WriterState(100, {"parts": [1]}), generation=2)
    assert (held.size, held.hash_state, held.generation) == (100, b"h" * 8, 2)
    assert held.resume_state() == WriterState(100, {"parts": [1]})
    held.recorded(100, None, None, generation=3)  # a writer that keeps no state
    assert held.resume_state() == WriterState(100, {})


def test_a_lost_lease_refuses_the_next_chunk_with_the_recorded_range() -> None:
    held = lease(size=10)
    held.check()
    held.lost = True
    with pytest.raises(LeaseLost) as refused:
        held.check()
    assert refused.value.held == 10  # the domain says what is kept; the edge says it in HTTP
    wire = wire_error(refused.value)
    assert (wire.status, wire.code) == (429, "TOOMANYREQUESTS")
    assert wire.headers == {"Range": "0-9", "Retry-After": "1"}


def test_lease_of_row_is_lease_less() -> None:
    row = {"size": 5, "writer": None, "generation": 1, "store": "fs:default"}
    viewed = Lease.of_row("u9", row)
    assert (viewed.upload_id, viewed.token, viewed.size, viewed.takeover) == ("u9", "", 5, False)


@pytest.mark.skipif(not AVAILABLE, reason="libcrypto is part of every supported Python")
def test_the_running_digest_resumes_from_a_saved_state() -> None:
    fresh = _resume_hash(lease())
    assert fresh is not None and fresh.length == 0
    running = ResumableSha256()
    running.update(b"first chunk")
    resumed = _resume_hash(lease(size=11, hash_state=running.state()))
    assert resumed is not None
    resumed.update(b" and the rest")
    assert resumed.hexdigest() == hashlib.sha256(b"first chunk and the rest").hexdigest()


def test_without_a_trustworthy_state_the_commit_rehashes() -> None:
    assert _resume_hash(lease(size=11, hash_state=None)) is None
    assert _resume_hash(lease(size=11, hash_state=b"not a sha-256 state")) is None


async def stream(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def collect(source: AsyncIterator[bytes] | Metered) -> list[bytes]:
    return [chunk async for chunk in source]


async def test_rechunk_joins_small_pieces_and_passes_large_ones() -> None:
    big = b"x" * 10
    assert await collect(rechunk(stream([b"a", b"", b"bc", b"def", big, b"g"]), size=4)) == [
        b"abcdef",
        big,
        b"g",
    ]


async def test_metered_hashes_and_counts_every_byte() -> None:
    hasher = hashlib.sha256()
    metered = Metered(stream([b"ab", b"cd"]), hasher, expected=4)
    assert b"".join(await collect(metered)) == b"abcd"
    assert metered.count == 4
    assert hasher.hexdigest() == hashlib.sha256(b"abcd").hexdigest()


@pytest.mark.parametrize("pieces", [[b"abc"], [b"abcde"]])
async def test_a_body_that_differs_from_content_length_is_size_invalid(pieces: list[bytes]) -> None:
    with pytest.raises(SizeInvalid):
        await collect(Metered(stream(pieces), None, expected=4))


@pytest.mark.parametrize("pieces", [[b"abc"], [b"abcde"]])
async def test_a_body_that_differs_from_content_range_is_range_invalid(pieces: list[bytes]) -> None:
    with pytest.raises(RangeInvalid):
        await collect(Metered(stream(pieces), None, expected=4, from_range=True))
