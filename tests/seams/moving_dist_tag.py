"""Test seam (loaded with `pytest -p tests.seams.moving_dist_tag`): a dist-tag moves mid-run.

The registry cannot be made to move `latest` for a test, so this plugin answers
`<package>@latest` with the registry's real record of SEAM_TAG_BEFORE until the file
SEAM_TAG_MOVES_WHEN exists, and with the real record of SEAM_TAG_AFTER from then on. Every other
lookup, and both answers' versions and integrity hashes, come from the real registry.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from harness.targets.registry import NpmRegistry, Release

_real = NpmRegistry.resolve


def pytest_configure(config: pytest.Config) -> None:
    before, after = os.environ["SEAM_TAG_BEFORE"], os.environ["SEAM_TAG_AFTER"]
    trigger = Path(os.environ["SEAM_TAG_MOVES_WHEN"])

    def resolve(self: NpmRegistry, package: str, spec: str, origin: str) -> Release:
        if spec != "latest":
            return _real(self, package, spec, origin)
        version = after if trigger.exists() else before
        return replace(_real(self, package, version, origin), spec=spec)

    NpmRegistry.resolve = resolve  # type: ignore[method-assign]
