"""An interrupted run that had changed something and proven nothing puts the known-good back.

Called from the procedure's teardown (harness.pytest.fixtures) after Ctrl-C, SIGTERM or a phase past
its time limit, when the candidate had not passed the soak (or, in a rollback, the known-good
had not passed its watches): the same restore as `rollback_restore` (stop, switch `current` to
the kept known-good prefix, config, credentials and sessions back from the pre-upgrade backup,
compared hash by hash), then start and readiness, then one real reply as the proof. A later
signal may cut the proof short (the verdict then says the known-good serves unproven), never
the restore: signals in the teardown are only recorded (harness.procedure.interrupt).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.common.errors import HarnessError
from harness.common.nonce import new_nonce
from harness.procedure.interrupt import Interruption, Skipped
from harness.procedure.phases import Procedure, one_reply
from harness.soak.driver import check

PROOF_TIMEOUT_S = 90.0
ALONE_READY_S = 30.0
Emit = Callable[..., Any]


def put_known_good_back(procedure: Procedure, interruption: Interruption,
                        emit: Emit | None = None) -> dict[str, Any]:
    """Restore, start and prove the known-good; the outcome goes to the run's records
    (`interruption.restore`) and, through `emit`, to transitions.jsonl."""
    record, settings, gateway = procedure.record, procedure.settings, procedure.gateway
    good = settings.known_good
    assert good is not None
    emit = emit or (lambda *args, **kwargs: None)
    started = time.monotonic()
    was = gateway.active_version()
    outcome: dict[str, Any] = {"from": was, "to": good.version, "restored": False,
                               "ready": False, "proven": False}
    record.after_interruption.restore = outcome
    emit("interrupted", "restore", summary=f"no version proven since the first change "
         f"(active: {was}): putting {good.version} back")
    with procedure.evidence.step(f"interrupted before a version was proven: put {good.label} back"):
        try:
            if was == good.version and gateway.is_running():
                # the rollback had restored and started it (it starts only a restored one):
                # leave it alone, as the guard does, and prove it
                ready = gateway.wait_ready(ALONE_READY_S)
                outcome.update(restored=True, left_alone=True, state_diff=None,
                               restore=f"{good.label} was already back and running (the "
                               "rollback had restored it): left alone, not restarted")
            else:
                prepared = procedure.prepared.get("known_good")
                installation = prepared.installation if prepared else \
                    procedure.runtime.install(good, procedure.safety.node_for(good),
                                              settings.target.package.install_env)
                restored = procedure.restore_known_good(installation)
                outcome.update(restored=restored.ok, restore=restored.summary,
                               state_diff=restored.details.get("state_diff"))
                gateway.start()
                ready = gateway.wait_ready()
            outcome.update(ready=ready.ready, ready_s=round(ready.seconds, 2),
                           ready_reason=ready.reason)
            if ready.ready:
                outcome.update(_prove(procedure, interruption))
        except HarnessError as exc:
            outcome["error"] = exc.message
        outcome["seconds"] = round(time.monotonic() - started, 2)
        outcome["summary"] = _summary(outcome)
        procedure.evidence.attach_json("restore after the interruption", outcome)
    emit("interrupted", "restored" if outcome["ready"] else "restore_failed",
         summary=outcome["summary"], proven=outcome["proven"])
    return outcome


def _prove(procedure: Procedure, interruption: Interruption) -> dict[str, Any]:
    """One real reply carrying its nonce; a later signal skips it (never the restore)."""
    api = procedure.settings.target.api
    nonce = new_nonce()
    try:
        with interruption.skippable():
            reply = one_reply(procedure.gateway, api.health_agent,
                              f"Recovery check: quote the reference tag {nonce} verbatim.",
                              timeout=PROOF_TIMEOUT_S)
    except Skipped as exc:
        return {"proven": False, "proof": f"skipped: {exc}"}
    verdict, reason = check(reply, (nonce,))
    return {"proven": verdict == "good", "proof": reason}


def _summary(outcome: dict[str, Any]) -> str:
    if outcome.get("error"):
        return f"the restore stopped on an error: {outcome['error']}"
    if not outcome["restored"]:
        return f"the restore did not hold: {outcome.get('restore')}"
    if not outcome["ready"]:
        return f"{outcome['restore']}; it never became ready: {outcome.get('ready_reason')}"
    proof = "answered a real reply" if outcome["proven"] else \
        f"was not proven ({outcome.get('proof')})"
    return (f"{outcome['restore']}; ready in {outcome['ready_s']:g} s and {proof} (the whole "
            f"restore took {outcome['seconds']:g} s)")
