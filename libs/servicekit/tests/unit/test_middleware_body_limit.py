"""The body limit counts only what HTTP/1 framing does not already bound: a body whose
length the Content-Length does not fix (chunked, HTTP/2) is counted as it streams in."""

import json

import pytest
from plugboard_servicekit.middleware import BodySizeLimitMiddleware
from starlette.types import Message, Receive, Scope, Send

LIMIT = 100


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body and answers with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


async def _call(http_version: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    scope = {"type": "http", "http_version": http_version, "method": "POST", "path": "/x",
             "headers": headers}  # fmt: skip
    pending = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await BodySizeLimitMiddleware(_echo_length, LIMIT)(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("http_version", "headers"),
    [
        ("2", [(b"content-length", b"10")]),  # HTTP/2: Content-Length does not frame it
        ("1.1", [(b"transfer-encoding", b"chunked")]),
        ("1.1", [(b"content-length", b"ten")]),  # unparseable: counted, not trusted
    ],
)
async def test_unframed_bodies_are_counted(http_version: str, headers: list[tuple[bytes, bytes]]):
    status, body = await _call(http_version, headers, [b"x" * 60, b"x" * 60])
    assert status == 413
    assert json.loads(body)["status"] == 413


async def test_framed_and_small_bodies_pass():
    assert await _call("1.1", [(b"content-length", b"80")], [b"x" * 80]) == (200, b"80")
    assert await _call("2", [], [b"x" * 40, b"x" * 40]) == (200, b"80")


async def test_a_declared_length_over_the_limit_is_refused_before_reading():
    status, _ = await _call("1.1", [(b"content-length", b"101")], [])
    assert status == 413
