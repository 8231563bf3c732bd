"""The test kit every service's tests use (plus the pytest plugin and its backends).

- `wait_until(predicate, timeout, interval)`: poll a condition.
- `service_client(spec, settings)`: an httpx client on a service app running its
  lifespan on a fresh provisioned schema; fixture `service_settings(spec, ...)`.
- `TopicReader(bootstrap, topic)`: events a test's action published, or proof of none.
- `Canary(value).assert_absent(logs=, events=, bodies=, pg_dump_of=)`.
- fixtures `service_processes` / `fresh_service_processes` (every service as a
  process, as `make dev` runs them) and `oauth_server` (a real OAuth 2.0 server
  process); `start_service_processes` and `start_oauth_server(issuer=...)`.

Names are imported on first use, so loading the pytest plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugboard_servicekit.testing.apps import AppClient, service_client, test_settings
    from plugboard_servicekit.testing.canary import Canary, pg_dump
    from plugboard_servicekit.testing.oauth import OAuthServer, start_oauth_server
    from plugboard_servicekit.testing.processes import ServiceProcesses, start_service_processes
    from plugboard_servicekit.testing.topics import TopicReader
    from plugboard_servicekit.testing.waiting import wait_until

_WHERE = {
    "AppClient": "apps",
    "service_client": "apps",
    "test_settings": "apps",
    "Canary": "canary",
    "pg_dump": "canary",
    "OAuthServer": "oauth",
    "start_oauth_server": "oauth",
    "ServiceProcesses": "processes",
    "start_service_processes": "processes",
    "TopicReader": "topics",
    "wait_until": "waiting",
}
__all__ = [
    "AppClient",
    "Canary",
    "OAuthServer",
    "ServiceProcesses",
    "TopicReader",
    "pg_dump",
    "service_client",
    "start_oauth_server",
    "start_service_processes",
    "test_settings",
    "wait_until",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
