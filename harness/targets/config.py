"""Config changes that ship with a candidate: a patch deep-merged into the gateway's JSON config.

An upgrade often comes with a config change (a new key that works around a regression). The
patch is applied after the pre-upgrade backup, so a rollback restores the config the known-good
version accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.common.errors import InfrastructureError, InputError


def load_json_patch(path: Path) -> dict[str, Any]:
    try:
        patch = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(str(path), "", "file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(str(path), "", f"not valid JSON: {exc}") from None
    if not isinstance(patch, dict):
        raise InputError(str(path), "", "expected a JSON object to merge into the config")
    return patch


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def patch_json_file(path: Path, patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into the JSON file at `path`; return the merged document."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InfrastructureError(f"{path}: cannot apply the candidate config patch: {exc}") \
            from None
    merged = deep_merge(document, patch)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    return merged
