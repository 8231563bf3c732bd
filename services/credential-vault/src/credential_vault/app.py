"""The credential-vault service: its ``ServiceSpec`` and the ASGI app factory.

Run: ``python -m credential_vault`` (binds ``VAULT_HTTP_HOST:VAULT_HTTP_PORT``), or
``uvicorn credential_vault.app:create_app --factory``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI
from plugboard_servicekit.app import Runtime, ServiceSpec, create_service_app
from plugboard_servicekit.logging import get_logger

from credential_vault.api.routes import SERVICE_STATE, router
from credential_vault.consumers import HANDLERS
from credential_vault.crypto import Envelope
from credential_vault.keyring import KeyRingError, KeyStore
from credential_vault.service import CredentialService
from credential_vault.settings import VaultSettings
from credential_vault.sweeper import run_sweeper

SERVICE_NAME = "credential-vault"
_KEYS = "keystore"

log = get_logger(__name__)


def _settings(runtime: Runtime) -> VaultSettings:
    settings = runtime.settings
    assert isinstance(settings, VaultSettings), "create_app passes VaultSettings"
    return settings


def _load_keys(keys: KeyStore) -> None:
    """Load or reload the ring; on failure keep serving with the ring already loaded."""
    try:
        if keys.reload_if_changed():
            log.info("keyring_loaded", active=keys.ring.active, min=keys.ring.min_decrypt_version)
    except KeyRingError as exc:
        log.warning("keyring_unavailable", reason=str(exc))


async def _on_startup(runtime: Runtime) -> None:
    settings = _settings(runtime)
    inline = settings.keyring.get_secret_value() if settings.keyring is not None else None
    keys = KeyStore(settings.keyring_file, inline)
    _load_keys(keys)
    runtime.state[_KEYS] = keys
    envelope = Envelope(keys, settings.data_key_cache_size)
    runtime.state[SERVICE_STATE] = CredentialService(runtime.pool, envelope)


async def _watch_keyring(runtime: Runtime) -> None:
    """Load a ring that was missing at start-up; follow rotations of its file."""
    while True:
        await asyncio.sleep(_settings(runtime).keyring_reload_seconds)
        _load_keys(runtime.state[_KEYS])


async def _sweep(runtime: Runtime) -> None:
    settings = _settings(runtime)
    await run_sweeper(
        runtime.pool,
        settings.sweep_interval_seconds,
        settings.sweep_batch_size,
        settings.sweep_concurrency,
    )


async def keyring(runtime: Runtime) -> str | None:
    """Readiness: no requests until the key ring is loaded."""
    keys: KeyStore | None = runtime.state.get(_KEYS)
    return None if keys is not None and keys.loaded else "not loaded"


SPEC = ServiceSpec(
    name=SERVICE_NAME,
    schema="vault",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    handlers=HANDLERS,
    on_startup=_on_startup,
    background=(_watch_keyring, _sweep),
    readiness=(keyring,),
)


def create_app(settings: VaultSettings | None = None) -> FastAPI:
    """The app (uvicorn ``--factory``); settings from the environment unless given."""
    return create_service_app(SPEC, settings or VaultSettings())
