"""Nonces prove that a reply came from the model and not from a gateway's apology.

Every soak request carries a fresh nonce in its prompt; the model lab echoes every nonce it
finds in the last user message; a reply is good only if it carries the nonces it must.
"""

from __future__ import annotations

import re
import secrets

NONCE_RE = re.compile(r"\bnonce-[0-9a-f]{12}\b")


def new_nonce() -> str:
    return f"nonce-{secrets.token_hex(6)}"


def find_nonces(text: str) -> list[str]:
    """Nonces in order of first appearance, without repeats."""
    seen: dict[str, None] = {}
    for match in NONCE_RE.finditer(text):
        seen.setdefault(match.group(0), None)
    return list(seen)
