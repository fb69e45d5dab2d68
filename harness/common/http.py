"""The one place that builds httpx clients, sync and async.

Every httpx client of the harness (a gateway's health probe and replies, the soak driver's
pools, the alert webhook, the model lab's records) is made here, so a test can send them all
through a transport of its own (httpx's `MockTransport`, or a real one that records) with
`injected(transport)` instead of patching httpx. What a caller passes (timeout, limits, TLS
context, whether the environment's proxy settings apply) is passed on unchanged; what it leaves
out is httpx's own default, as when it built the client itself: those that kept the
environment's proxy settings out (`trust_env=False`: the model lab's records, the alert webhook)
still do. (The guardian and `harness status` probe with the standard library's urllib: the
guardian runs on the target with nothing else.)
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

# httpx's own defaults, named: a caller that gives none gets what httpx.get() would use
DEFAULT_TIMEOUT = httpx.Timeout(5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

Transport = httpx.BaseTransport | httpx.AsyncBaseTransport
Verify = ssl.SSLContext | str | bool

_injected: list[Transport] = []  # innermost `injected(...)` last
_shared_tls: ssl.SSLContext | None = None


def shared_tls() -> ssl.SSLContext:
    """One TLS context for every client that verifies as httpx does by default: httpx builds
    one per client otherwise (loading the CA bundle, about 20 ms of CPU), and readiness is
    polled every 50 ms while a starting gateway needs the cores most."""
    global _shared_tls
    if _shared_tls is None:
        _shared_tls = httpx.create_ssl_context()
    return _shared_tls


def _verify(verify: Verify) -> Verify:
    return shared_tls() if verify is True else verify


@contextmanager
def injected(transport: Transport) -> Iterator[Transport]:
    """Clients built inside the block send through `transport` (a test's seam). A transport
    that is both sync and async, as `httpx.MockTransport` is, serves both kinds of client."""
    _injected.append(transport)
    try:
        yield transport
    finally:
        _injected.remove(transport)


def _transport(given: Transport | None, kind: type) -> Transport | None:
    if given is not None:
        return given
    for transport in reversed(_injected):
        if isinstance(transport, kind):
            return transport
    return None


def sync_client(*, timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
           limits: httpx.Limits = DEFAULT_LIMITS, verify: Verify = True,
           trust_env: bool = True, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A sync client; use it as a context manager (`with sync_client(...) as c:`)."""
    return httpx.Client(timeout=timeout, limits=limits, verify=_verify(verify),
                        trust_env=trust_env,
                        transport=_transport(transport, httpx.BaseTransport))


def async_client(*, timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
                 limits: httpx.Limits = DEFAULT_LIMITS, verify: Verify = True,
                 trust_env: bool = True,
                 transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """An async client; use it as an async context manager, or aclose() it."""
    return httpx.AsyncClient(timeout=timeout, limits=limits, verify=_verify(verify),
                             trust_env=trust_env,
                             transport=_transport(transport, httpx.AsyncBaseTransport))
