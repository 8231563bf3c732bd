"""Watch credential expiries with aiokafka (the libs/contracts README shows this file)."""

from aiokafka import AIOKafkaConsumer
from plugboard_contracts import parse_event


async def watch_expiries(bootstrap: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        "credential.expired",
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            event = parse_event(record.value, record.headers)  # CloudEvent[CredentialExpired]
            print(f"{event.orgid}: credential {event.data.credential_id} expired", flush=True)
            await consumer.commit()  # after the effect: at-least-once
    finally:
        await consumer.stop()
