"""The CI templates in docs/ci/ run here as their CI system runs them, so they cannot rot.

The unit tests run each template's release decision on every exit code the harness has; the
end-to-end tests take a copy of the project as a checkout would give it, run every shell step of
the template in order with a short soak of a candidate that passes, and check that what the
template's other steps would publish (job summary, test results, artifact, cache) is there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.common.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"

# What each outcome means for a pipeline; a new exit code must be placed here on purpose.
DECISIONS = {
    ExitCode.PASSED: ("pass", 0),
    ExitCode.ROLLED_BACK: ("fail", 1),
    ExitCode.ROLLBACK_FAILED: ("needs-a-person", 3),
    ExitCode.ABORTED: ("fail", 1),
    ExitCode.SOAK_FAILED: ("fail", 1),
    ExitCode.STALE_LOCK: ("needs-a-person", 3),
    ExitCode.BACKUP_NO_GO: ("needs-a-person", 3),
    ExitCode.NO_APPROVAL: ("needs-a-person", 3),
    ExitCode.INTERRUPTED: ("needs-a-person", 3),
    ExitCode.RUN_DIR_BUSY: ("fail", 1),  # another run is going on in that folder
    ExitCode.RUN_DIR_DEAD: ("needs-a-person", 3),  # what the dead run left must be looked at
    ExitCode.BAD_INPUT: ("fail", 1),
    ExitCode.UNKNOWN_VERSION: ("fail", 1),
    ExitCode.GATEWAY_UNREACHABLE: ("fail", 1),
}


def github_job() -> dict:
    return yaml.safe_load(GITHUB.read_text())["jobs"]["acceptance"]


def gitlab_job() -> dict:
    return yaml.safe_load(GITLAB.read_text())["release-acceptance"]


def expand(text: str, values: dict[str, str]) -> str:
    """GitHub's `${{ expr }}` for the expressions the template uses; any other is an error."""
    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("hashFiles("):
            return "test"
        assert expr in values, f"{GITHUB.name}: the test does not know ${{{{ {expr} }}}}"
        return values[expr]
    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def bash(script: str, env: dict[str, str], cwd: Path, timeout: float = 60,
         log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A step's script as both CI systems run it: bash, stopping at the first failing command.
    With `log`, its output is also appended there (the job's log, to read when a step fails)."""
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if log is not None:
        with open(log, "a") as handle:
            handle.write(f"$ {script}\n{done.stdout}{done.stderr}[exit {done.returncode}]\n")
    return done


def write_verdict(run_dir: Path, code: ExitCode | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if code is not None:
        outcome = code.name.lower() if code < ExitCode.BAD_INPUT else "error"
        (run_dir / "verdict.json").write_text(json.dumps(
            {"outcome": outcome, "exit_code": int(code), "claim": f"the claim of {outcome}"}))


def test_every_exit_code_has_a_place_in_the_pipelines_decision() -> None:
    assert set(DECISIONS) == set(ExitCode), "say what a new exit code means for a pipeline"


@pytest.mark.parametrize("code", [*ExitCode, None], ids=lambda c: c.name if c else "no-verdict")
def test_the_github_decision_step_maps_each_outcome(tmp_path: Path, code: ExitCode | None) -> None:
    decision, status = DECISIONS[code] if code is not None else ("needs-a-person", 3)
    step = next(s for s in github_job()["steps"] if s.get("id") == "decision")
    write_verdict(tmp_path / "run", code)
    output = tmp_path / "github-output"
    env = {**os.environ, "RUN_DIR": str(tmp_path / "run"), "GITHUB_OUTPUT": str(output)}
    done = bash(expand(step["run"], {}), env, tmp_path)
    assert done.returncode == status, done.stdout + done.stderr
    assert output.read_text() == f"decision={decision}\n"
    said = done.stdout.strip()
    if code is None:
        assert "no verdict was written" in said
    elif decision == "pass":
        assert said == "Release decision: pass: passed (exit 0): the claim of passed"
    else:  # an annotation on the run's page, with the outcome and the claim
        title = "Release rejected" if decision == "fail" else "Release needs a person now"
        assert said.startswith(f"::error title={title}::") and f"(exit {int(code)})" in said


@pytest.mark.parametrize("code", [*ExitCode, None], ids=lambda c: c.name if c else "no-verdict")
def test_the_gitlab_decision_maps_each_outcome(tmp_path: Path, code: ExitCode | None) -> None:
    decision, status = DECISIONS[code] if code is not None else ("needs-a-person", 3)
    script = gitlab_job()["script"][-1]
    write_verdict(tmp_path / "run", code)
    done = bash(script, {**os.environ, "RUN_DIR": str(tmp_path / "run")}, tmp_path)
    assert done.returncode == status, done.stdout + done.stderr
    assert done.stdout.startswith(f"Release decision: {decision}: ")


# -- the templates end to end -------------------------------------------------------------------
def checkout(dest: Path) -> Path:
    """The project's tracked files as they are now (what a CI checkout gives), and the runtime
    cache restored into it (what the templates' cache step gives: Node.js and the versions)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".cache").mkdir()
    (ROOT / ".cache" / "runtime").mkdir(parents=True, exist_ok=True)
    (dest / ".cache" / "runtime").symlink_to(ROOT / ".cache" / "runtime")
    return dest


def short_run_env(tmp_path: Path) -> dict[str, str]:
    """This machine's environment, and the make variables a user sets for a short run: no
    baseline soak (the candidate is the known-good version, so there is nothing to compare)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    return {**env, "BASELINE": "0", "HOME": str(tmp_path / "home")}


def assert_a_passing_run(run_dir: Path, log: Path) -> dict:
    assert (run_dir / "verdict.json").is_file(), log.read_text()[-4000:]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["outcome"] == "passed", verdict["claim"]
    assert verdict["lock"]["candidate"]["version"] == "2026.3.28"
    # the short soak reached the run: long enough for every path's min_samples (2) iterations,
    # the sequence's second one included, on a loaded machine
    assert verdict["lock"]["soak_window_s"] == 60
    assert (run_dir / "junit.xml").is_file()
    assert (run_dir / "html" / "index.html").is_file()  # the report, rendered by the real Allure
    return verdict


@pytest.mark.e2e
@pytest.mark.soaks(minutes=2)
def test_the_github_workflow_runs_here_step_by_step(tmp_path: Path) -> None:
    project = checkout(tmp_path / "checkout")
    job = github_job()
    values = {"inputs.candidate": "2026.3.28", "inputs.soak": "60",
              "runner.temp": str(tmp_path / "runner-temp"), "runner.os": "Linux"}
    env = short_run_env(tmp_path)
    env.update({k: expand(str(v), values) for k, v in job["env"].items()})
    values.update({f"env.{k}": env[k] for k in job["env"]})
    summary, output = tmp_path / "step-summary.md", tmp_path / "github-output"
    env.update({"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)})
    (tmp_path / "runner-temp").mkdir()
    published: dict[str, dict] = {}
    for step in job["steps"]:
        if "uses" in step:  # an action: what it would publish or cache is checked below
            action = step["uses"].split("@")[0]
            published[action] = {k: expand(str(v), values) for k, v in step.get("with", {}).items()}
            continue
        done = bash(expand(step["run"], values), env, project, timeout=1500,
                    log=tmp_path / "job.log")
        assert done.returncode == 0, (tmp_path / "job.log").read_text()[-5000:]
    run_dir = Path(env["RUN_DIR"])
    verdict = assert_a_passing_run(run_dir, tmp_path / "job.log")
    assert output.read_text() == "decision=pass\n"
    # the job summary is the run's summary.md, outcome first
    assert summary.read_text() == (run_dir / "summary.md").read_text()
    assert "**passed** (exit 0)" in summary.read_text()
    assert verdict["claim"] in summary.read_text()
    # what the actions would publish and keep is where they look for it
    assert (project / published["actions/cache"]["path"]).is_dir()
    assert Path(published["mikepenz/action-junit-report"]["report_paths"]).is_file()
    artifact = Path(published["actions/upload-artifact"]["path"])
    assert {"verdict.json", "summary.md", "junit.xml", "html"} <= {p.name for p in
                                                                  artifact.iterdir()}


@pytest.mark.e2e
@pytest.mark.soaks
def test_the_gitlab_job_runs_here_line_by_line(tmp_path: Path) -> None:
    project = checkout(tmp_path / "checkout")
    job = gitlab_job()
    env = short_run_env(tmp_path)
    env["CI_PIPELINE_ID"] = "4242"
    env.update({key: value.replace("$CI_PIPELINE_ID", env["CI_PIPELINE_ID"])  # as GitLab does
                for key, value in job["variables"].items()})
    # the pipeline's variables (the job runs only when CANDIDATE is set), which override the
    # job's own, as in GitLab
    assert job["rules"] == [{"if": "$CANDIDATE"}]
    env.update({"CANDIDATE": "2026.3.28", "SOAK": "60"})
    output = ""
    for line in [*job["before_script"], *job["script"]]:
        done = bash(line, env, project, timeout=1500, log=tmp_path / "job.log")
        assert done.returncode == 0, (tmp_path / "job.log").read_text()[-5000:]
        output += done.stdout
    run_dir = project / env["RUN_DIR"]
    verdict = assert_a_passing_run(run_dir, tmp_path / "job.log")
    assert f"Release decision: pass: passed (exit 0): {verdict['claim']}" in output
    assert (run_dir / "summary.md").read_text() in output  # the summary is in the job's log
    # the cache, the test report and the artifact are where GitLab looks for them
    assert all((project / path).is_dir() for path in job["cache"]["paths"])
    junit = job["artifacts"]["reports"]["junit"].replace("$RUN_DIR", env["RUN_DIR"])
    assert (project / junit).is_file()
    kept = [p.replace("$RUN_DIR", env["RUN_DIR"]) for p in job["artifacts"]["paths"]]
    assert all((project / path / "html" / "index.html").is_file() for path in kept)
