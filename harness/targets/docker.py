"""An attached gateway that Docker (or docker compose) runs: a named container, read with the
docker CLI where `target.host` says (this host: the engine DOCKER_HOST names), never changed.

    observe()         `docker inspect`: running or not, its id, its main process, when it was
                      started (StartedAt) and how often its restart policy restarted it, the
                      image it runs; a new id or start time means it was replaced or restarted
    its version       the image's `org.opencontainers.image.version` label, else the image's
                      tag (when it is a version, not `latest`), else the endpoint the kind
                      names (LiteLLM: /health/readiness); where they disagree the notes say so
    its log           `docker logs` (stdout and stderr, each line dated by the engine)
    its files         read inside the container (`docker exec ... cat`): its token file, its
                      config (for redaction)
"""

from __future__ import annotations

import json
import re
from typing import Any

from harness.common.commands import Completed
from harness.common.errors import InfrastructureError
from harness.signals.dockerlogs import DockerLogsWatcher
from harness.signals.signatures import Signature
from harness.targets.client import GatewayEndpoint
from harness.targets.driver import AttachedDriver, Observation
from harness.targets.profile import TargetProfile
from harness.targets.runner import CommandRunner

VERSION_LABEL = "org.opencontainers.image.version"
DOCKER_LABELS = {"container_id": "container id", "main_pid": "PID", "active_since": "StartedAt",
                 "n_restarts": "RestartCount", "active": "State", "version": "version"}
_VERSION = re.compile(r"^v?\d+(\.\d+)+([.-][\w.]+)?$")


class AttachedContainer(AttachedDriver):
    name = "docker"

    def __init__(self, runner: CommandRunner, container: str,
                 version_from: tuple[str, str] = ("", ""), docker: str = "docker") -> None:
        self.runner = runner
        self.container = container
        self.what = f"container {container}"
        self.version_from = version_from  # the kind's (endpoint, key)
        self.docker = docker
        self.env: dict[str, str] = {}  # the container's environment (redaction)
        self.endpoint: GatewayEndpoint | None = None  # set by attach()
        self._last: dict[str, Any] = {}

    @classmethod
    def for_profile(cls, profile: TargetProfile) -> AttachedContainer:
        from harness.targets.attached import _runner
        from harness.targets.kinds import kind

        assert profile.attached is not None
        found = kind(profile.kind)
        return cls(_runner(profile), profile.attached.container,
                   (found.version_endpoint, found.version_key))

    # -- reading it -------------------------------------------------------------------------
    def inspect(self) -> dict[str, Any]:
        done = self.runner.run([self.docker, "inspect", "--type", "container", self.container],
                               timeout=30)
        if done.returncode != 0:
            raise InfrastructureError(f"docker inspect {self.container} failed: {done.tail(2)}")
        try:
            found = json.loads(done.stdout)[0]
        except (ValueError, IndexError, KeyError) as exc:
            raise InfrastructureError(f"docker inspect {self.container}: unreadable ({exc})"
                                      ) from None
        self._last = found
        return found

    def observe(self) -> Observation:
        found = self.inspect()
        state, config = found.get("State") or {}, found.get("Config") or {}
        self.env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
        image = config.get("Image") or ""
        version, sources, notes = self._version(image, config.get("Labels") or {})
        self.version = version
        return Observation(
            self.container, "active" if state.get("Running") else "inactive",
            state.get("Status", ""), int(state.get("Pid") or 0), state.get("StartedAt", ""),
            int(found.get("RestartCount") or 0), version, sources, notes,
            container_id=found.get("Id", ""), image=image, labels=dict(DOCKER_LABELS))

    def _version(self, image: str, labels: dict[str, str]
                 ) -> tuple[str | None, dict[str, Any], list[str]]:
        from harness.targets.attached import endpoint_version

        label = labels.get(VERSION_LABEL) or None
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
        tag_version = tag.removeprefix("v") if tag and _VERSION.match(tag) else None
        sources: dict[str, Any] = {"image": {"name": image, "label": label, "tag": tag}}
        says = {}
        if label:
            says["image label"] = label
        if tag_version:
            says["image tag"] = tag_version
        if self.endpoint is not None and self.version_from[0]:
            told, sources["endpoint"], _ = endpoint_version(self.endpoint, *self.version_from)
            if told:
                says["endpoint"] = told
        notes = []
        if len(set(says.values())) > 1:
            notes.append("version sources disagree: " + ", ".join(
                f"{where} {v}" for where, v in says.items()))
        version = next(iter(says.values()), None)
        if version is None:
            notes.append(f"no version found: the image {image!r} has no {VERSION_LABEL} label "
                         "nor a version tag, and the kind names no version endpoint")
        return version, sources, notes

    def not_running(self) -> str | None:
        state = self.inspect().get("State") or {}
        return None if state.get("Running") else f"is inactive/{state.get('Status', '?')}"

    @property
    def pid(self) -> int | None:
        return int((self._last.get("State") or {}).get("Pid") or 0) or None

    def is_running(self) -> bool:
        try:
            return bool((self.inspect().get("State") or {}).get("Running"))
        except InfrastructureError:
            return False

    def exit_code(self) -> int | None:
        state = self._last.get("State") or {}
        return None if state.get("Running") else state.get("ExitCode")

    def read_file(self, path: str) -> Completed:
        return self.runner.run([self.docker, "exec", self.container, "cat", "--", path],
                               timeout=30)

    # -- its log ------------------------------------------------------------------------------
    def console_watcher(self, signatures: tuple[Signature, ...]) -> DockerLogsWatcher:
        return DockerLogsWatcher.from_now(self.runner, self.container, signatures,
                                          docker=self.docker)

    def log_tail(self, lines: int = 20) -> str:
        done = self.runner.run(["sh", "-c", 'exec "$1" logs --tail "$2" "$3" 2>&1', "sh",
                                self.docker, str(lines), self.container], timeout=30)
        return done.stdout.rstrip("\n")
