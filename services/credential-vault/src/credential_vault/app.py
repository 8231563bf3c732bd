"""The credential-vault service: its composition root, its ``ServiceSpec`` and the ASGI app.

Run: ``python -m credential_vault`` (binds ``VAULT_HTTP_HOST:VAULT_HTTP_PORT``), or
``uvicorn credential_vault.app:create_app --factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from plugboard_servicekit.app import Runtime, ServiceSpec, create_service_app
from plugboard_servicekit.logging import get_logger

from credential_vault.api.routes import router
from credential_vault.consumers import SUBSCRIPTIONS
from credential_vault.crypto import DataKeyPolicy, Envelope
from credential_vault.datakeys import default_replica_id, load_keyring, report_ring_version
from credential_vault.handoffs import run_handoff_purge
from credential_vault.keyring import KeyStore
from credential_vault.service import CredentialService, VaultDeps
from credential_vault.settings import VaultSettings
from credential_vault.sweeper import run_sweeper

SERVICE_NAME = "credential-vault"
TRUSTED_SERVICES = frozenset({"connector-registry", "oauth-broker", "installation"})
"""Services that store and read credentials for an org: the registry (OAuth client
secrets), the broker (tokens it obtains and refreshes) and installation (connections)."""

log = get_logger(__name__)


async def _load_keys(pool: asyncpg.Pool, keys: KeyStore) -> None:
    """First load, checked against the database's key-check values; a database error
    only delays it to the watcher's first round."""
    try:
        await load_keyring(pool, keys)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("keyring_first_load_failed", error=type(exc).__name__)


@asynccontextmanager
async def vault_dependencies(runtime: Runtime[VaultSettings]) -> AsyncIterator[VaultDeps]:
    """The composition root: the key ring, the envelope and the use cases, built once."""
    settings = runtime.settings
    inline = settings.keyring.get_secret_value() if settings.keyring is not None else None
    keys = KeyStore(settings.keyring_file, inline)
    await _load_keys(runtime.pool, keys)
    policy = DataKeyPolicy(settings.data_key_max_encryptions, settings.data_key_max_age_days)
    envelope = Envelope(keys, settings.data_key_cache_size, policy)
    yield VaultDeps(
        settings=settings,
        schema=runtime.spec.schema,
        pool=runtime.pool,
        keys=keys,
        envelope=envelope,
        credentials=CredentialService(
            runtime.pool, envelope, durable_reveal_audit=settings.reveal_audit_durable
        ),
    )


async def watch_keyring(deps: VaultDeps) -> None:
    """Load a ring that was missing at start-up, follow rotations of its file (checked
    against the database), and report the ring held (rotation fences on it)."""
    interval = deps.settings.keyring_reload_seconds
    await report_ring_version(deps.pool, default_replica_id(), deps.keys, interval)


async def sweep(deps: VaultDeps) -> None:
    settings = deps.settings
    await run_sweeper(
        deps.pool,
        settings.sweep_interval_seconds,
        settings.sweep_batch_size,
        settings.sweep_concurrency,
        dsn=settings.database_url,
        schema=deps.schema,
    )


async def purge_handoffs(deps: VaultDeps) -> None:
    """Destroy revocation hand-offs nobody took within ``VAULT_REVOCATION_HANDOFF_SECONDS``."""
    settings = deps.settings
    await run_handoff_purge(
        deps.pool, settings.revocation_handoff_seconds, settings.revocation_purge_interval_seconds
    )


async def keyring(deps: VaultDeps) -> str | None:
    """Readiness: no requests until a key ring is loaded (the status says why not).

    A refused ring *file* does not gate: the ring already held keeps serving, and the
    same bad file reaches every replica at once, so gating on it would take the whole
    vault out of service. ``keyring_file`` reports it instead."""
    return None if deps.keys.loaded else deps.keys.status() or "not loaded"


def keyring_file(deps: VaultDeps) -> str | None:
    """Reported, never gating: a ring file refused while the held ring serves
    (``refused key ring file: <reason>; serving active version N``)."""
    return deps.keys.status() if deps.keys.loaded else None


SPEC = ServiceSpec[VaultSettings, VaultDeps](
    name=SERVICE_NAME,
    schema="vault",
    migrations=Path(__file__).parent / "migrations",
    settings_type=VaultSettings,
    dependencies=vault_dependencies,
    routers=[router],
    subscriptions=SUBSCRIPTIONS,
    background=(watch_keyring, sweep, purge_handoffs),
    readiness=(keyring,),
    reports=(keyring_file,),
    trusted_services=TRUSTED_SERVICES,
)


def create_app(settings: VaultSettings | None = None) -> FastAPI:
    """The app (uvicorn ``--factory``); settings from the environment unless given."""
    return create_service_app(SPEC, settings or VaultSettings())
