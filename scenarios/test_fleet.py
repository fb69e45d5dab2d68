"""A fleet release (`--fleet FILE -n N`, collected only then): one item per member, in wave
order, each on an xdist worker; the member waits for its wave, then runs its own acceptance."""

import json

import allure
import pytest

from harness.fleet.plan import Member
from harness.pytest.fleet import FLEET


def test_member(fleet_member: Member, pytestconfig: pytest.Config) -> None:
    fleet = pytestconfig.stash[FLEET]
    allure.dynamic.parent_suite(fleet_member.name)
    run = fleet.take_part(fleet_member)  # skipped, untouched, when its wave is never reached
    allure.attach(json.dumps(run.verdict, indent=2, default=str), name="member verdict.json",
                  attachment_type=allure.attachment_type.JSON)
    entry = fleet.ledger.read()["members"][fleet_member.name]
    assert run.exit_code == 0 and entry["word"] in (None, "keep"), \
        f"{fleet_member.name} (exit {run.exit_code}): {entry['reason'] or run.claim}"
