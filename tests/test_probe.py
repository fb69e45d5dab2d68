"""Readiness is probed every 50 ms while the gateway starts, on the same two cores it needs:
a probe must cost the harness next to nothing (httpx builds a TLS context per call unless it is
given one: about 20 ms of CPU, a third of a core at that rate)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.common import http
from harness.modellab import ModelLab
from harness.targets.client import GatewayEndpoint


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelLab]:
    folder: Path = tmp_path_factory.mktemp("probe")
    with ModelLab(log_path=folder / "lab.log") as running:
        yield running


def test_probes_share_one_tls_context(lab: ModelLab, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = httpx.create_ssl_context

    def counted(*args: object, **kwargs: object) -> object:
        built.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return built[-1]

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    monkeypatch.setattr(http, "_shared_tls", None)
    endpoint = GatewayEndpoint(lab.url, "lab", {}, "/v1/chat/completions", "")
    answers = [endpoint.probe("/lab/stats", timeout=5) for _ in range(5)]
    assert [status for status, _ in answers] == [200] * 5
    refused = GatewayEndpoint("http://127.0.0.1:9", "x", {}, "/", "").probe("/healthz", 1)
    assert refused[0] is None
    assert len(built) == 1
