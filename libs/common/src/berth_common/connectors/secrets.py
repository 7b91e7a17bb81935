"""Upstream passwords encrypted at rest (docs/SECURITY.md, "Connector credentials").

A password given to ``berth connector add`` is encrypted with Fernet (AES-128-CBC + HMAC-SHA256,
from ``cryptography``) before it enters an event; only the token is stored, in the event store
and the ``api.feed_connectors`` projection. Keys come from the settings (``connectors.key``,
``connectors.key_file``, else ``<data_dir>/secrets/connectors.key``): the first key encrypts,
every key decrypts, so a key is rotated by putting the new one first.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from berth_common.settings import Settings

DEFAULT_KEY_FILE = Path("secrets") / "connectors.key"


class SecretsUnavailable(Exception):
    """No key is configured, or a stored token cannot be decrypted with the configured keys."""


def key_file_of(settings: Settings) -> Path:
    """The key file the settings name: ``connectors.key_file``, else the data dir's default."""
    return settings.connectors.key_file or settings.data_dir / DEFAULT_KEY_FILE


def _keys(settings: Settings) -> list[str]:
    if settings.connectors.key:
        return [k.strip() for k in settings.connectors.key.split(",") if k.strip()]
    path = key_file_of(settings)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return []


class SecretBox:
    """Encrypts and decrypts upstream passwords with the configured Fernet keys.

    Raises (from the constructor): ``SecretsUnavailable`` if a key is not a Fernet key.
    """

    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys]) if keys else None
        except ValueError as exc:
            raise SecretsUnavailable(f"a connectors key is not a Fernet key: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of the keys the settings name (possibly none: then it cannot encrypt)."""
        return cls(_keys(settings))

    @property
    def ready(self) -> bool:
        """Whether a key is configured."""
        return self._fernet is not None

    def encrypt(self, secret: str) -> str:
        """The Fernet token of ``secret``. Raises ``SecretsUnavailable`` without a key."""
        if self._fernet is None:
            raise SecretsUnavailable(
                "no key to encrypt connector passwords: set connectors.key (BERTH_CONNECTORS__KEY)"
                " or connectors.key_file (docs/CONFIGURATION.md)"
            )
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The secret of a Fernet token. Raises ``SecretsUnavailable`` (no key, wrong key)."""
        if self._fernet is None:
            raise SecretsUnavailable("no connectors key is configured to decrypt the upstream password")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretsUnavailable(
                "the connector's password cannot be decrypted with the configured connectors keys"
            ) from None


def ensure_key_file(path: Path) -> Path:
    """Create ``path`` with a new Fernet key (mode 0600, folder 0700) unless it exists."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(Fernet.generate_key().decode() + "\n")
    return path
