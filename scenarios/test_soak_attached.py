"""An attached deployment must come out of its soak as it went in. The harness changes nothing
on it, so a new MainPID or start time means the gateway restarted on its own while it was soaked:
a crash that Restart=always hid, which the soak's own numbers may barely show.
(Deselected for an embedded target: the run restarts its own deployment on purpose.)"""

import json

import allure
import pytest

from harness.pytest.session import ATTACHED
from harness.soak.driver import SoakRun
from harness.targets.gateway import Gateway

pytestmark = pytest.mark.soak


def test_soak_left_as_found(soak_run: SoakRun, deployment: Gateway,
                            pytestconfig: pytest.Config) -> None:
    attached = pytestconfig.stash[ATTACHED]
    now = attached.unit.observe()
    allure.dynamic.story("left as found")
    allure.attach(json.dumps({"before": attached.found.as_dict(), "after": now.as_dict()},
                             indent=2), name="unit before and after the soak",
                  attachment_type=allure.attachment_type.JSON)
    changes = now.changes_since(attached.found)
    assert not changes, ("the gateway did not stay as found while it was soaked (the harness "
                         "changed nothing): " + "; ".join(changes))
    assert deployment.is_serving(), f"{attached.driver.what} no longer serves after the soak"
