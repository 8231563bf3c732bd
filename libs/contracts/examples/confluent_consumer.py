"""Watch credential expiries with confluent-kafka / librdkafka (shown in the README)."""

from collections.abc import Callable

from confluent_kafka import Consumer
from plugboard_contracts import parse_event


def watch_expiries(bootstrap: str, group: str, running: Callable[[], bool] = lambda: True) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["credential.expired"])
    try:
        while running():
            record = consumer.poll(0.5)
            if record is None or record.error():
                continue
            event = parse_event(record.value(), record.headers())  # CloudEvent[CredentialExpired]
            print(f"{event.orgid}: credential {event.data.credential_id} expired", flush=True)
            consumer.commit(message=record, asynchronous=False)  # after the effect: at-least-once
    finally:
        consumer.close()
