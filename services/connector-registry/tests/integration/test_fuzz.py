"""Schemathesis on the registry's own OpenAPI document: no input gives a 5xx.

The registry and the vault run as real processes (as ``make dev`` runs them); every
operation gets positive and negative cases with a token holding every scope, so the
cases reach the use cases, not just the auth check. Bounded: a few examples per
operation, no shrinking, the whole test well under a minute on 2 cores.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from plugboard_servicekit.embedded import server_tempdir
from plugboard_servicekit.testing import ServiceProcesses
from plugboard_servicekit.testing.processes import start_service_processes
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def processes(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str]
) -> Iterator[ServiceProcesses]:
    state = server_tempdir("registry-fuzz-")
    try:
        with start_service_processes(
            postgres_dsn, kafka_bootstrap, state_dir=state, jwt_keys=jwt_keys,
            services=["connector-registry", "credential-vault"],
        ) as started:  # fmt: skip
            yield started
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_no_input_gives_a_server_error(
    processes: ServiceProcesses, all_scopes: tuple[str, ...]
) -> None:
    base = processes.url("connector-registry")
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    auth = {"Authorization": f"Bearer {processes.token('fuzz-org', all_scopes)}"}
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    strategies = [
        operation.as_strategy(generation_mode=mode)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    assert len(strategies) > 30

    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(strategies),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),  # type: ignore[arg-type]
    )
    @given(st.one_of(strategies))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base, session=session, headers=auth, timeout=30)
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    statuses: list[int] = []
    run()
    assert len(statuses) > 100
    assert any(200 <= status < 300 for status in statuses)  # some cases got past validation
    print(f"fuzz: {len(statuses)} requests, statuses {sorted(set(statuses))}")
