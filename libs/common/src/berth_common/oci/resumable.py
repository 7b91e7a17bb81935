"""Resumable SHA-256: a running digest whose state is saved with the offset it covers.

A chunked upload's PATCHes may land on different processes and replicas (docs/ARCHITECTURE.md,
"Upload sessions"). The digest checked at the closing PUT must be that of the bytes that become
the blob, without reading them all again: so the state of the running hash is stored in the
upload session's row together with the byte count it covers, and the next PATCH — in any
process — resumes from it. Distribution does the same with Go's resumable sha256.

Python's ``hashlib`` cannot export a state. This module calls OpenSSL's libcrypto — the same
library Python's ``hashlib`` uses — through ``ctypes`` with a ``SHA256_CTX`` that Python owns,
so the state is 112 plain bytes (eight 32-bit chaining words, the bit count, the partial block
and its fill). Speed is libcrypto's (the same assembly as ``hashlib``; the GIL is released
during each call). Where libcrypto or its ``SHA256_*`` functions are missing, ``AVAILABLE`` is
False and callers fall back to hashing the stored bytes at commit.

Saved states start with a format byte and are checked on load (``ValueError`` when malformed),
so a state from another build is refused rather than trusted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

_FORMAT: Final = 1
_BLOCK: Final = 64


class _Sha256Ctx(ctypes.Structure):
    """OpenSSL's ``SHA256_CTX`` (openssl/sha.h): stable across OpenSSL 1.0 to 3.x."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * _BLOCK),
        ("num", ctypes.c_uint32),
        ("md_len", ctypes.c_uint32),
    ]


def _load() -> ctypes.CDLL | None:
    for name in ("libcrypto.so.3", "libcrypto.so.1.1", ctypes.util.find_library("crypto")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            for fn in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
                fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            continue
        lib.SHA256_Update.argtypes = [ctypes.POINTER(_Sha256Ctx), ctypes.c_char_p, ctypes.c_size_t]
        return lib
    return None


_LIB = _load()
AVAILABLE: Final = _LIB is not None
STATE_BYTES: Final = 1 + ctypes.sizeof(_Sha256Ctx)


class ResumableSha256:
    """A ``hashlib``-like SHA-256 (``name``, ``update``, ``hexdigest``, ``copy``) whose state can
    be saved (``state()``, bytes) and resumed (``ResumableSha256(state)``), in any process.

    Raises:
        RuntimeError: libcrypto is not available (check ``AVAILABLE`` first).
        ValueError: ``state`` is not a state this module saved.
    """

    name = "sha256"
    digest_size = 32

    def __init__(self, state: bytes | None = None) -> None:
        if _LIB is None:
            raise RuntimeError("resumable SHA-256 needs OpenSSL's libcrypto")
        self._ctx = _Sha256Ctx()
        if state is None:
            _LIB.SHA256_Init(ctypes.byref(self._ctx))
        else:
            self._ctx = _parse(state)

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        """Feed ``data`` (any length)."""
        assert _LIB is not None
        view = data if isinstance(data, bytes) else bytes(data)
        _LIB.SHA256_Update(ctypes.byref(self._ctx), view, len(view))

    def copy(self) -> ResumableSha256:
        """An independent hash with the same state."""
        twin = ResumableSha256.__new__(ResumableSha256)
        twin._ctx = _Sha256Ctx.from_buffer_copy(self._ctx)
        return twin

    def digest(self) -> bytes:
        """The 32-byte digest of everything fed so far (the state is not consumed)."""
        assert _LIB is not None
        out = (ctypes.c_uint8 * 32)()
        _LIB.SHA256_Final(out, ctypes.byref(_Sha256Ctx.from_buffer_copy(self._ctx)))
        return bytes(out)

    def hexdigest(self) -> str:
        """``digest()`` as 64 lowercase hex characters."""
        return self.digest().hex()

    @property
    def length(self) -> int:
        """Bytes fed so far (from the state's bit count)."""
        return int((self._ctx.Nh << 32) | self._ctx.Nl) // 8

    def state(self) -> bytes:
        """The saved state: ``STATE_BYTES`` bytes, resumable by ``ResumableSha256(state)``."""
        return bytes([_FORMAT]) + bytes(self._ctx)


def _parse(state: bytes) -> _Sha256Ctx:
    """Check and load a saved state. Raises ``ValueError``."""
    if len(state) != STATE_BYTES or state[0] != _FORMAT:
        raise ValueError("not a saved SHA-256 state of this format")
    ctx = _Sha256Ctx.from_buffer_copy(state[1:])
    length = ((ctx.Nh << 32) | ctx.Nl) // 8
    if ctx.md_len != 32 or ctx.num >= _BLOCK or ctx.num != length % _BLOCK or ctx.Nl % 8:
        raise ValueError("inconsistent SHA-256 state")
    return ctx
