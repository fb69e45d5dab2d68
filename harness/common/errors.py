"""Errors the harness reports to a person, and the exit codes a CI job reads.

Every error raised at the edge (a file, an option, the registry, the gateway) carries the one
line a person needs: which file and key, or which version, and what was wrong.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of an acceptance run (documented in the README)."""

    PASSED = 0
    ROLLED_BACK = 10
    ROLLBACK_FAILED = 11
    ABORTED = 12  # a check before anything was stopped failed: nothing changed
    SOAK_FAILED = 13  # a soak of a running deployment (no upgrade in the run) failed
    STALE_LOCK = 14  # the candidate moved since the review was locked: re-run and re-lock
    BACKUP_NO_GO = 15  # backup posture below full and not accepted up front: a person decides
    NO_APPROVAL = 16  # the manual restart gate got no approval in time (or a refusal)
    INTERRUPTED = 17  # SIGINT, SIGTERM or a phase past its time limit: never a pass
    RUN_DIR_BUSY = 18  # the run dir belongs to a run that is still alive
    RUN_DIR_DEAD = 19  # the run dir holds a run that died without a verdict
    BAD_INPUT = 20  # malformed target, policy or scenario file, or a bad option
    UNKNOWN_VERSION = 21
    GATEWAY_UNREACHABLE = 22


EXIT_CODE_MEANINGS = {
    ExitCode.PASSED: "passed: the candidate passed every phase and the soak",
    ExitCode.ROLLED_BACK: "rolled back: the candidate failed, the known-good was restored",
    ExitCode.ROLLBACK_FAILED: "rollback failed: a person must look now",
    ExitCode.ABORTED: "aborted before any change (a preflight, backup or install check)",
    ExitCode.SOAK_FAILED: "a soak of a running deployment failed (no upgrade in the run)",
    ExitCode.STALE_LOCK: "the review is stale: a version moved since it was locked",
    ExitCode.BACKUP_NO_GO: "backup posture below full and not accepted up front",
    ExitCode.NO_APPROVAL: "the manual restart gate got no approval in time",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM, a time limit): never a pass",
    ExitCode.RUN_DIR_BUSY: "the run dir is held by a run that is still alive",
    ExitCode.RUN_DIR_DEAD: "the run dir holds a run that died (see --resume-cleanup)",
    ExitCode.BAD_INPUT: "a malformed target, policy, scenario or verdict file, or a bad option",
    ExitCode.UNKNOWN_VERSION: "a version the registry does not know",
    ExitCode.GATEWAY_UNREACHABLE: "the gateway does not run or answer",
}


def exit_codes_text() -> str:
    """The exit codes, one a line, as `--help` shows them."""
    return "exit codes:\n" + "".join(f"  {int(code):>3}  {meaning}\n"
                                     for code, meaning in EXIT_CODE_MEANINGS.items())


class HarnessError(Exception):
    """An error with a one-line message and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(HarnessError):
    """A file or option the user gave is malformed. The message names the file and key."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, source: str, key: str, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


class UnknownVersionError(HarnessError):
    exit_code = ExitCode.UNKNOWN_VERSION


class GatewayUnreachableError(HarnessError):
    exit_code = ExitCode.GATEWAY_UNREACHABLE


class StaleLockError(HarnessError):
    """The versions a run would change to are not the ones its review was locked against."""

    exit_code = ExitCode.STALE_LOCK


class InfrastructureError(HarnessError):
    """The harness could not do its own work (registry, install, disk): not a product verdict."""

    exit_code = ExitCode.ABORTED


class RunDirError(HarnessError):
    """The run dir is not this run's to use: a live run holds it, or a dead one left it."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LeaseLostError(HarnessError):
    """The guard took the gateway over (this harness stalled past its lease): the harness no
    longer acts on it."""

    exit_code = ExitCode.INTERRUPTED
