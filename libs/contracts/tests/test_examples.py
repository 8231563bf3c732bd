"""The README's consumer examples run against the real broker, with both client libraries."""

import asyncio
import importlib.util
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka import AIOKafkaProducer
from plugboard_contracts import new_event
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import CredentialExpired
from plugboard_servicekit import kafka

pytestmark = pytest.mark.integration
CONTRACTS = Path(__file__).resolve().parents[1]


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, CONTRACTS / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_shows_the_tested_examples_verbatim() -> None:
    readme = (CONTRACTS / "README.md").read_text()
    for name in ("aiokafka_consumer", "confluent_consumer"):
        body = (CONTRACTS / "examples" / f"{name}.py").read_text().split('"""\n', 2)[-1]
        assert body.strip() in readme, name


async def _publish_expiry(bootstrap: str) -> str:
    await kafka.ensure_topics(bootstrap, ["credential.expired"])
    payload = CredentialExpired(
        organisation_id="org-ex", credential_id=uuid7(), type=CredentialType.STRING,
        name="k", version=1, expires_at=datetime.now(UTC),
    )  # fmt: skip
    event = new_event("credential.expired", source="test", orgid="org-ex", data=payload)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("credential.expired", event.to_json_bytes(), key=b"k")
    finally:
        await producer.stop()
    return f"org-ex: credential {payload.credential_id} expired"


async def _printed(capsys: pytest.CaptureFixture[str], line: str, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    seen = ""
    while loop.time() < deadline:
        seen += capsys.readouterr().out
        if line in seen:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_aiokafka_example_reads_an_expiry(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = await _publish_expiry(kafka_bootstrap)
    task = asyncio.create_task(_example("aiokafka_consumer").watch_expiries(
        kafka_bootstrap, f"ex-{uuid7()}"))  # fmt: skip
    try:
        assert await _printed(capsys, line, 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_confluent_kafka_example_reads_an_expiry(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = await _publish_expiry(kafka_bootstrap)
    stop = threading.Event()
    watch = _example("confluent_consumer").watch_expiries
    thread = threading.Thread(
        target=watch, args=(kafka_bootstrap, f"ex-{uuid7()}", lambda: not stop.is_set())
    )
    thread.start()
    try:
        assert await _printed(capsys, line, 45)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)
