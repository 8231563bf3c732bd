"""The key ring: versioned 256-bit key-encryption keys (KEKs), from a JSON file or env.

File format (base64 keys, versions as strings because JSON keys are strings)::

    {"active": 2, "minDecryptVersion": 1, "keys": {"1": "<base64>", "2": "<base64>"}}

``active`` wraps every new data key; ``minDecryptVersion`` is the oldest version
still allowed to decrypt (HashiCorp Vault's ``min_decryption_version``). The file
is the unit an operator rotates; replicas watch it and reload, so a rotation
needs no restart. Keys never leave this module's objects in logs or reprs.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

KEK_BYTES = 32


class KeyRingError(Exception):
    """The key ring is missing, malformed, or asked for a version it cannot serve."""


class KeyRingNotLoadedError(KeyRingError):
    """No key ring yet: the service is not ready (the file may appear later)."""


class _KeyRingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    active: int = Field(ge=1)
    min_decrypt_version: int = Field(default=1, ge=1, alias="minDecryptVersion")
    keys: dict[int, str]

    @model_validator(mode="after")
    def _consistent(self) -> _KeyRingFile:
        if self.active not in self.keys:
            raise ValueError("active version has no key")
        if self.min_decrypt_version > self.active:
            raise ValueError("minDecryptVersion is above the active version")
        return self


@dataclass(frozen=True)
class KeyRing:
    """An immutable snapshot of the KEKs; rotation returns a new ring."""

    keys: Mapping[int, bytes] = field(repr=False)
    active: int
    min_decrypt_version: int = 1

    def kek(self, version: int) -> bytes:
        """The KEK of ``version``; refuses versions below the minimum or unknown ones."""
        if version < self.min_decrypt_version:
            raise KeyRingError(f"key version {version} is below minDecryptVersion")
        try:
            return self.keys[version]
        except KeyError:
            raise KeyRingError(f"key version {version} is not in the key ring") from None

    def rotated(self) -> KeyRing:
        """Add a fresh KEK version and make it the active one."""
        version = max(self.keys) + 1
        keys = {**self.keys, version: secrets.token_bytes(KEK_BYTES)}
        return replace(self, keys=keys, active=version)

    def with_min_decrypt_version(self, version: int) -> KeyRing:
        if not 1 <= version <= self.active:
            raise KeyRingError(f"minDecryptVersion must be between 1 and {self.active}")
        return replace(self, min_decrypt_version=version)

    def to_json(self) -> str:
        keys = {str(v): base64.b64encode(k).decode() for v, k in sorted(self.keys.items())}
        body = {"active": self.active, "minDecryptVersion": self.min_decrypt_version, "keys": keys}
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        """Parse and check a key ring document; errors never include key material."""
        try:
            parsed = _KeyRingFile.model_validate_json(text)
            keys = {v: base64.b64decode(k, validate=True) for v, k in parsed.keys.items()}
        except (ValidationError, ValueError) as exc:
            raise KeyRingError(f"malformed key ring: {_safe_reason(exc)}") from None
        if any(len(key) != KEK_BYTES for key in keys.values()):
            raise KeyRingError(f"every key must be {KEK_BYTES} bytes")
        return cls(keys=keys, active=parsed.active, min_decrypt_version=parsed.min_decrypt_version)

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(keys={1: secrets.token_bytes(KEK_BYTES)}, active=1)


def _safe_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False)[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return "invalid base64 key"


def save_keyring(path: Path, ring: KeyRing) -> None:
    """Write atomically with mode 0600, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(ring.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_keyring_file(path: Path) -> KeyRing:
    try:
        return KeyRing.from_json(path.read_text())
    except OSError as exc:
        raise KeyRingError(f"cannot read key ring file: {exc.strerror}") from None


def generate_keyring_file(path: Path) -> KeyRing:
    """Create a key ring with one fresh KEK (dev runner); never overwrites an existing file."""
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite a key ring")
    path.parent.mkdir(parents=True, exist_ok=True)
    ring = KeyRing.generate()
    save_keyring(path, ring)
    return ring


class KeyStore:
    """The service's current key ring, reloaded when its file changes.

    ``reload_if_changed`` is called periodically and whenever a data key names
    a KEK version the ring does not know yet (another process rotated it).
    An inline ring (env) never changes; rotating it means a restart.
    """

    def __init__(self, file: Path | None, inline: str | None) -> None:
        self._file = file
        self._inline = inline
        self._ring: KeyRing | None = None
        self._stamp: tuple[int, int, int] | None = None

    @property
    def loaded(self) -> bool:
        return self._ring is not None

    @property
    def ring(self) -> KeyRing:
        if self._ring is None:
            raise KeyRingNotLoadedError("key ring not loaded")
        return self._ring

    def load(self) -> KeyRing:
        """(Re)read the configured source; the previous ring stays if this fails."""
        if self._inline is not None:
            self._ring = KeyRing.from_json(self._inline)
        elif self._file is not None:
            stamp = _stamp(self._file)
            self._ring = load_keyring_file(self._file)
            self._stamp = stamp
        else:
            raise KeyRingError("no key ring configured (VAULT_KEYRING_FILE or VAULT_KEYRING)")
        return self._ring

    def reload_if_changed(self) -> bool:
        """Reload the file when it changed on disk; True when a new ring was loaded."""
        if self._ring is not None and (self._file is None or self._inline is not None):
            return False
        if self._ring is not None and _stamp(self._file) == self._stamp:
            return False
        self.load()
        return True


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """Inode, mtime and size: ``save_keyring`` replaces the file, so the inode changes."""
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return None if stat is None else (stat.st_ino, stat.st_mtime_ns, stat.st_size)
