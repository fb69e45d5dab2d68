"""One real reply asked of a gateway the moment it is live, before it says it is ready.

OpenClaw loads its agent runtime on its first agent run (about 4 s here, after the 4-5 s its
process takes to listen), and answers `/readyz` a moment to a few seconds after `/healthz`.
Asked at once, that load overlaps the wait for readiness instead of following it, so the
first reply that proves the gateway (health's, or the rollback smoke's) does not pay for it.
Its outcome is recorded, never judged: a gateway is proven by the replies asked once it is
ready, never by this one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx

from harness.nonce import new_nonce
from harness.target.client import ChatOutcome, GatewayEndpoint

WARM_UP_TIMEOUT_S = 60.0


class WarmUp:
    def __init__(self, endpoint: GatewayEndpoint, agent: str,
                 timeout_s: float = WARM_UP_TIMEOUT_S) -> None:
        self.endpoint, self.agent, self.timeout_s = endpoint, agent, timeout_s
        self.nonce = new_nonce()
        self.outcome: ChatOutcome | None = None
        self.sent_at: float | None = None
        self._thread: threading.Thread | None = None

    def send(self) -> None:
        """Ask it now, in the background (once); a daemon thread, so it never holds the run."""
        if self._thread is not None:
            return
        self.sent_at = time.time()
        self._thread = threading.Thread(target=self._ask, name="warm-up", daemon=True)
        self._thread.start()

    def _ask(self) -> None:
        async def go() -> ChatOutcome:
            async with httpx.AsyncClient() as client:
                return await self.endpoint.chat(
                    client, self.agent, f"Warm-up: quote the reference tag {self.nonce}.",
                    False, self.timeout_s)

        self.outcome = asyncio.run(go())

    def as_dict(self) -> dict[str, Any]:
        """What it did so far: when it was sent, and how it ended if it has."""
        if self.sent_at is None:
            return {"sent": False}
        out: dict[str, Any] = {"sent": True, "agent": self.agent, "sent_at": round(self.sent_at, 3)}
        o = self.outcome
        if o is not None:
            out.update(ended_after_s=round(o.ended - self.sent_at, 3), status=o.status,
                       error=o.error, nonce_echoed=self.nonce in o.content)
        return out
