"""The oauth-broker's composition root: its deps, spec and uvicorn factory
(`oauth_broker.app:create_app`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from plugboard_servicekit.app import Runtime, ServiceSpec, service_app_factory
from plugboard_servicekit.client import ServiceClient

from oauth_broker.api.routes import router
from oauth_broker.configs import ConfigStore
from oauth_broker.consumers import SUBSCRIPTIONS
from oauth_broker.deps import BrokerDeps
from oauth_broker.domain.breaker import EndpointGuards
from oauth_broker.domain.egress import EgressPolicy
from oauth_broker.domain.timing import Backoff, RefreshTiming
from oauth_broker.grants import Grants
from oauth_broker.issuers import IssuerMetadata
from oauth_broker.leases import Leases
from oauth_broker.onboarding import Onboarding
from oauth_broker.provider import ProviderClient
from oauth_broker.revoker import Revoker
from oauth_broker.scheduler import Scheduler
from oauth_broker.sessions import Sessions
from oauth_broker.settings import OAuthBrokerSettings
from oauth_broker.tokens import TokenKeeper
from oauth_broker.vault import VAULT, VaultClient

TRUSTED_SERVICES = frozenset({"installation"})
"""Services whose service tokens the broker accepts: installation creates connections
through grants and imports (scope oauth:tokens)."""


def _timing(settings: OAuthBrokerSettings) -> tuple[RefreshTiming, Backoff]:
    timing = RefreshTiming(
        margin=timedelta(seconds=settings.refresh_margin_seconds),
        default_lifetime=timedelta(seconds=settings.default_token_lifetime_seconds),
        keepalive=timedelta(seconds=settings.keepalive_seconds),
        keepalive_jitter=settings.keepalive_jitter,
    )
    backoff = Backoff(
        base=timedelta(seconds=settings.backoff_base_seconds),
        cap=timedelta(seconds=settings.backoff_cap_seconds),
    )
    return timing, backoff


@asynccontextmanager
async def dependencies(runtime: Runtime[OAuthBrokerSettings]) -> AsyncIterator[BrokerDeps]:
    settings, pool = runtime.settings, runtime.pool
    policy = EgressPolicy.parse(settings.egress_allow)
    guards = EndpointGuards(
        settings.token_endpoint_concurrency,
        settings.breaker_threshold,
        settings.breaker_cooldown_seconds,
    )
    async with ServiceClient.to(runtime, VAULT) as client:
        linger = settings.write_linger_seconds
        vault = VaultClient(client, settings.client_secret_cache_seconds, linger)
        provider = ProviderClient(policy, guards, settings.provider_timeout_seconds)
        configs = ConfigStore(pool, vault)
        grants = Grants(provider, configs, vault)
        timing, backoff = _timing(settings)
        owner = f"{runtime.spec.name}:{uuid.uuid4()}"
        leases = Leases(
            pool, owner, settings.lease_seconds, linger, settings.provider_timeout_seconds
        )
        keeper = TokenKeeper(pool, vault, configs, grants, timing, backoff, leases)
        sessions = Sessions(
            pool,
            configs,
            grants,
            vault,
            keeper,
            IssuerMetadata(policy),
            settings.public_url,
            timedelta(seconds=settings.session_ttl_seconds),
        )
        scheduler = Scheduler(
            keeper,
            vault,
            batch=settings.scheduler_batch,
            interval=settings.scheduler_interval_seconds,
        )
        revoker = Revoker(keeper, configs, provider, vault)
        onboarding = Onboarding(pool, configs, grants, vault, keeper)
        try:
            yield BrokerDeps(
                settings,
                pool,
                vault,
                configs,
                provider,
                keeper,
                sessions,
                onboarding,
                scheduler,
                revoker,
            )
        finally:
            await revoker.drain()
            await provider.aclose()


async def refresh_scheduler(deps: BrokerDeps) -> None:
    """Background task: refresh ahead of expiry (off with OAUTH_SCHEDULER_ENABLED=false)."""
    if deps.settings.scheduler_enabled:
        await deps.scheduler.run()


SPEC: ServiceSpec[OAuthBrokerSettings, BrokerDeps] = ServiceSpec(
    name="oauth-broker",
    schema="oauth",
    migrations=Path(__file__).parent / "migrations",
    settings_type=OAuthBrokerSettings,
    dependencies=dependencies,
    routers=(router,),
    subscriptions=SUBSCRIPTIONS,
    background=(refresh_scheduler,),
    trusted_services=TRUSTED_SERVICES,
)
create_app = service_app_factory(SPEC)
