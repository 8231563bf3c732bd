"""The broker's deps object: built once by ``app.dependencies``, used by routes,
consumers and background tasks."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from oauth_broker.configs import ConfigStore
from oauth_broker.onboarding import Onboarding
from oauth_broker.provider import ProviderClient
from oauth_broker.revoker import Revoker
from oauth_broker.scheduler import Scheduler
from oauth_broker.sessions import Sessions
from oauth_broker.settings import OAuthBrokerSettings
from oauth_broker.tokens import TokenKeeper
from oauth_broker.vault import VaultClient


@dataclass(frozen=True)
class BrokerDeps:
    settings: OAuthBrokerSettings
    pool: asyncpg.Pool
    vault: VaultClient
    configs: ConfigStore
    provider: ProviderClient
    keeper: TokenKeeper
    sessions: Sessions
    onboarding: Onboarding
    scheduler: Scheduler
    revoker: Revoker
