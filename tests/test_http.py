"""The httpx client factory: what a caller gives is kept, and a transport can be injected."""

from __future__ import annotations

import asyncio
import json

import httpx

from harness.common import http
from harness.procedure.transitions import deliver
from harness.targets.client import GatewayEndpoint
from harness.targets.profile import AlertSpec


def _recording() -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=f"answered {request.method} {request.url.path}")

    return httpx.MockTransport(answer), seen


def test_a_sync_client_sends_through_the_transport_it_is_given() -> None:
    transport, seen = _recording()
    with http.sync_client(transport=transport) as client:
        response = client.get("http://127.0.0.1:9/healthz")
    assert response.text == "answered GET /healthz"
    assert [str(r.url) for r in seen] == ["http://127.0.0.1:9/healthz"]


def test_an_async_client_sends_through_the_transport_it_is_given() -> None:
    transport, seen = _recording()

    async def go() -> httpx.Response:
        async with http.async_client(transport=transport) as client:
            return await client.post("http://127.0.0.1:9/v1/chat/completions", json={"a": 1})

    assert asyncio.run(go()).text == "answered POST /v1/chat/completions"
    assert seen[0].read() == b'{"a":1}'


def test_an_injected_transport_serves_every_client_built_inside_the_block() -> None:
    transport, seen = _recording()
    with http.injected(transport):
        with http.sync_client() as client:
            client.get("http://127.0.0.1:9/one")

        async def go() -> None:
            async with http.async_client() as client:
                await client.get("http://127.0.0.1:9/two")

        asyncio.run(go())
    assert [r.url.path for r in seen] == ["/one", "/two"]
    with http.sync_client() as client:  # outside the block: httpx's own transport again
        assert not isinstance(client._transport, httpx.MockTransport)  # noqa: SLF001


def test_a_probe_of_a_gateway_goes_through_the_factory() -> None:
    transport, seen = _recording()
    endpoint = GatewayEndpoint("http://127.0.0.1:9", "token", {}, "/v1/chat/completions",
                               "openclaw:")
    with http.injected(transport):
        status, text = endpoint.probe("/readyz")
    assert (status, text) == (200, "answered GET /readyz")
    assert seen[0].url.path == "/readyz"


def test_what_a_caller_gives_is_kept_and_the_rest_is_httpx_s_default() -> None:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=8)
    with http.sync_client(timeout=10, trust_env=False) as client:
        assert client.timeout == httpx.Timeout(10)
        assert client.trust_env is False
    with httpx.Client() as plain, http.sync_client() as ours:
        assert ours.timeout == plain.timeout
        assert ours.trust_env is plain.trust_env

    async def pool() -> httpx.Limits:
        async with http.async_client(limits=limits) as client:
            return client._transport._pool._max_connections  # noqa: SLF001

    assert asyncio.run(pool()) == 256


def test_an_alert_webhook_is_posted_through_the_factory() -> None:
    transport, seen = _recording()
    with http.injected(transport):
        results = deliver(AlertSpec(webhook="http://127.0.0.1:9/hook"), {"alert": "rolled_back"})
    assert results == [{"hook": "webhook", "ok": True, "url": "http://127.0.0.1:9/hook",
                        "detail": "HTTP 200"}]
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].read())["alert"] == "rolled_back"
