"""The key ring: versioned 256-bit key-encryption keys (KEKs), from a JSON file or env.

File format (base64 keys, versions as strings because JSON keys are strings)::

    {"active": 2, "minDecryptVersion": 1,
     "keys": {"1": "<base64>", "2": "<base64>"},
     "checks": {"1": "<hex>", "2": "<hex>"}}

``active`` wraps every new data key; ``minDecryptVersion`` is the oldest version
still allowed to decrypt (HashiCorp Vault's ``min_decryption_version``). A version
number alone does not name a key: two rotations from the same base file each make
a different "v2". So every KEK has a key-check value (KCV, an HMAC of a fixed
label under the key) that is written into the file, into every wrapped data key
row and into the replicas' heartbeats; a ring whose known versions changed bytes
is refused (``KeyStore``), and the ring already loaded keeps serving.
Keys never leave this module's objects in logs or reprs; KCVs are not secret.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

KEK_BYTES = 32
_CHECK_LABEL = b"plugboard-vault/kek-check/v1"
CHECK_BYTES = 8


class KeyRingError(Exception):
    """The key ring is missing, malformed, or asked for a version it cannot serve."""


class KeyRingNotLoadedError(KeyRingError):
    """No key ring yet: the service is not ready (the file may appear later)."""


class KeyRingRefusedError(KeyRingError):
    """A ring that would lose key material (forked, or moved backwards): not loaded."""


def key_check(key: bytes) -> str:
    """The KCV of a KEK: HMAC-SHA256 of a fixed label, 64 bits, hex. Reveals nothing of
    the key, and tells two different keys with the same version number apart."""
    return hmac.new(key, _CHECK_LABEL, hashlib.sha256).digest()[:CHECK_BYTES].hex()


class _KeyRingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    active: int = Field(ge=1)
    min_decrypt_version: int = Field(default=1, ge=1, alias="minDecryptVersion")
    keys: dict[int, str]
    checks: dict[int, str] | None = None

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
    checks: Mapping[int, str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        checks = {version: key_check(key) for version, key in self.keys.items()}
        object.__setattr__(self, "checks", checks)

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
        checks = {str(v): c for v, c in sorted(self.checks.items())}
        body = {
            "active": self.active,
            "minDecryptVersion": self.min_decrypt_version,
            "keys": keys,
            "checks": checks,
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        """Parse and check a key ring document; errors never include key material.

        ``checks`` is optional (rings written before KCVs existed); when present,
        each must be the KCV of its key, so a hand-edited key is caught here."""
        try:
            parsed = _KeyRingFile.model_validate_json(text)
            keys = {v: base64.b64decode(k, validate=True) for v, k in parsed.keys.items()}
        except (ValidationError, ValueError) as exc:
            raise KeyRingError(f"malformed key ring: {_safe_reason(exc)}") from None
        if any(len(key) != KEK_BYTES for key in keys.values()):
            raise KeyRingError(f"every key must be {KEK_BYTES} bytes")
        ring = cls(keys=keys, active=parsed.active, min_decrypt_version=parsed.min_decrypt_version)
        for version, check in (parsed.checks or {}).items():
            if ring.checks.get(version) != check:
                raise KeyRingError(f"key version {version} does not match its check value")
        return ring

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(keys={1: secrets.token_bytes(KEK_BYTES)}, active=1)


def _safe_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False)[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return "invalid base64 key"


def ring_conflict(
    candidate: KeyRing, loaded: KeyRing | None, known: Mapping[int, str]
) -> str | None:
    """Why ``candidate`` must not replace ``loaded`` (None: it may).

    ``known`` holds the KCVs the database has seen (data keys wrapped under them).
    Refused: a version whose bytes changed (against the loaded ring or the
    database), an active version that went down, or a version the loaded ring
    could decrypt that vanished although the candidate still allows it. Removing
    versions below the candidate's ``minDecryptVersion`` is the runbook's last step.
    """
    for version, check in sorted(candidate.checks.items()):
        if loaded is not None and loaded.checks.get(version, check) != check:
            return f"key version {version} changed (check {check}, loaded {loaded.checks[version]})"
        if known.get(version, check) != check:
            return (
                f"key version {version} does not match the database "
                f"(check {check}, data keys use {known[version]})"
            )
    if loaded is None:
        return None
    if candidate.active < loaded.active:
        return f"active key version went down from {loaded.active} to {candidate.active}"
    vanished = [
        v for v in loaded.keys if v not in candidate.keys and v >= candidate.min_decrypt_version
    ]
    if vanished:
        return f"key version {min(vanished)} vanished but is still above minDecryptVersion"
    return None


@contextmanager
def keyring_lock(path: Path) -> Iterator[None]:
    """Exclusive lock (``flock``) on a lock file next to the ring: every command that
    reads, changes and writes the ring holds it, so two runs cannot race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def save_keyring(path: Path, ring: KeyRing) -> None:
    """Write atomically with mode 0600, so readers never see half a file.

    The temporary file is a fresh ``mkstemp`` one (``O_CREAT | O_EXCL``, mode 0600,
    random name): a file planted or left behind under a predictable name, with a
    wider mode, can neither be written through nor pass its mode on."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(ring.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def load_keyring_file(path: Path) -> KeyRing:
    try:
        return KeyRing.from_json(path.read_text())
    except OSError as exc:
        raise KeyRingError(f"cannot read key ring file: {exc.strerror}") from None


def generate_keyring_file(path: Path) -> KeyRing:
    """Create a key ring with one fresh KEK (dev runner); never overwrites an existing file."""
    with keyring_lock(path):
        if path.exists():
            raise FileExistsError(f"{path} exists; refusing to overwrite a key ring")
        ring = KeyRing.generate()
        save_keyring(path, ring)
    return ring


class KeyStore:
    """The service's current key ring, reloaded when its file changes.

    ``reload_if_changed`` is called periodically and whenever a data key names
    a KEK version the ring does not know yet (another process rotated it). A new
    file is adopted only if ``ring_conflict`` finds nothing against the loaded
    ring and the KCVs the database knows (``know_checks``); otherwise the loaded
    ring keeps serving and ``status()`` says why. An inline ring (env) never
    changes; rotating it means a restart.
    """

    def __init__(self, file: Path | None, inline: str | None) -> None:
        self._file = file
        self._inline = inline
        self._ring: KeyRing | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._known: dict[int, str] = {}
        self._problem: str | None = None

    @property
    def loaded(self) -> bool:
        return self._ring is not None

    @property
    def ring(self) -> KeyRing:
        if self._ring is None:
            raise KeyRingNotLoadedError("key ring not loaded")
        return self._ring

    def status(self) -> str | None:
        """None when the configured ring is loaded as it is; else why not (for /readyz).

        A refused file with an older ring still serving reads ``refused key ring
        file: <reason>; serving active version N``."""
        if self._ring is None:
            return f"not loaded: {self._problem}" if self._problem else "not loaded"
        if self._problem is not None:
            serving = f"serving active version {self._ring.active}"
            return f"refused key ring file: {self._problem}; {serving}"
        return None

    def know_checks(self, known: Mapping[int, str]) -> None:
        """Record the KCVs the database holds; a loaded ring that contradicts them is
        dropped (writing under it would mix two keys under one version number)."""
        self._known = dict(known)
        if self._ring is not None and (reason := ring_conflict(self._ring, None, self._known)):
            self._ring, self._problem = None, reason

    def load(self) -> KeyRing:
        """(Re)read the configured source; the previous ring stays if this fails."""
        try:
            if self._inline is not None:
                return self._adopt(KeyRing.from_json(self._inline), None)
            if self._file is None:
                raise KeyRingError("no key ring configured (VAULT_KEYRING_FILE or VAULT_KEYRING)")
            stamp = _stamp(self._file)
            self._stamp = stamp  # a refused file is not re-read until it changes again
            return self._adopt(load_keyring_file(self._file), stamp)
        except KeyRingError as exc:
            self._problem = str(exc)
            raise

    def reload_if_changed(self) -> bool:
        """Reload the file when it changed on disk; True when a new ring was loaded."""
        if self._ring is not None and (self._file is None or self._inline is not None):
            return False
        if _stamp(self._file) == self._stamp and (self._ring is not None or self._problem):
            return False
        self.load()
        return True

    def _adopt(self, candidate: KeyRing, stamp: tuple[int, int, int] | None) -> KeyRing:
        reason = ring_conflict(candidate, self._ring, self._known)
        if reason is not None:
            raise KeyRingRefusedError(reason)
        self._ring, self._stamp, self._problem = candidate, stamp, None
        return candidate


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """Inode, mtime and size: ``save_keyring`` replaces the file, so the inode changes."""
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return None if stat is None else (stat.st_ino, stat.st_mtime_ns, stat.st_size)
