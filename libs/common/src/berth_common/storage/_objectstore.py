"""What the S3 and Azure drivers share: object keys under a store prefix, hidden keys, part sizes.

Keys: a store has a key prefix (``""`` or ``"a/b/"``); path ``p`` is key ``prefix + p``.
Keys holding ``~`` (a character no valid path has) belong to the driver itself — the S3
writer's flushed tails — and are never listed as objects; ``delete`` of a path removes them too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .base import validate_path, validate_prefix

MiB = 1 << 20
HIDDEN = "~"


@dataclass(frozen=True)
class Keys:
    """Maps paths to keys below ``root`` (``""`` or ending in ``/``) and back."""

    root: str

    def key(self, path: str) -> str:
        """The key of ``path``. Raises ``ValueError`` for an invalid path."""
        return self.root + validate_path(path)

    def path(self, key: str) -> str:
        """The path of a key below ``root``."""
        return key[len(self.root) :]

    def prefix(self, prefix: str) -> str:
        """The normalised ``list`` prefix of ``prefix`` as a key (``root`` for ``""``).

        Raises:
            ValueError: invalid prefix.
        """
        norm = validate_prefix(prefix)
        return self.root + norm if norm else self.root

    def below(self, key_prefix: str, key: str) -> bool:
        """Whether ``key`` is ``key_prefix`` itself or below it at a ``/`` boundary (the root
        prefix contains everything)."""
        if key_prefix == self.root:
            return key.startswith(self.root)
        return key == key_prefix or key.startswith(key_prefix + "/")

    def visible(self, key: str) -> bool:
        """An object key, not one of the driver's hidden keys."""
        return HIDDEN not in key[len(self.root) :]

    def hidden_stem(self, key: str) -> str:
        """For a hidden key ``…/data~x``: the key it belongs to (``…/data``)."""
        return key.split(HIDDEN, 1)[0]

    @staticmethod
    def new_tail() -> str:
        """A fresh, never-reused name suffix for a tail of ``path`` (``tail-<32 hex>``)."""
        return f"tail-{secrets.token_hex(16)}"

    def tail_key(self, path: str, name: str) -> str:
        """The hidden key of tail ``name`` of ``path``'s write."""
        return f"{self.key(path)}{HIDDEN}{name}"


def part_size(written: int, *, minimum: int, maximum: int, divisor: int) -> int:
    """Size of the next part/block of a write that has stored ``written`` bytes so far.

    Parts are at least ``minimum`` and at least ``written / divisor`` (rounded up to whole MiB),
    at most ``maximum``: the size grows with the object, so memory stays at one part while the
    part count limit still covers huge objects. S3 (5 MiB, 5 GiB, divisor 1,000): 10,000 parts
    reach 15 TiB, past S3's 5 TiB object limit; a part is 5 MiB up to 5 GiB written, 50 MiB at
    50 GiB. Azure (4 MiB, 4000 MiB, divisor 5,000): 50,000 blocks reach 61 TiB.
    """
    want = -(-written // divisor)
    want = -(-want // MiB) * MiB
    return max(minimum, min(maximum, want))


def check_window(offset: int, length: int | None, chunk_size: int) -> None:
    """``read``'s argument check (see ``StorageDriver.read``).

    Raises:
        ValueError: negative offset or length, or ``chunk_size < 1``.
    """
    if offset < 0 or (length is not None and length < 0) or chunk_size < 1:
        raise ValueError(f"invalid read window offset={offset} length={length} chunk={chunk_size}")
