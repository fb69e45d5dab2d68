"""The command-runner seam: how a driver runs commands on the box where the gateway lives.

    LocalRunner       the harness runs on the staging host itself
    DockerExecRunner  `docker exec` into a container (the harness's own tests)
    SshRunner         `ssh` to the staging host: `ssh://[USER@]HOST[:PORT]`, the OpenSSH client
                      with the harness user's own ssh config (keys, known hosts), or the file
                      named by HARNESS_SSH_CONFIG; BatchMode (never a password prompt)

Contract: `run(argv, user=, env=, cwd=, input=, timeout=)` -> `commands.Completed` (returncode,
stdout, stderr), never raising on a non-zero exit; a command that runs out of time is killed
*on the target* and comes back with returncode 124 and "timed out" in stderr.

Why not pytest-testinfra (evaluated at 10.2.2, whose `testinfra.get_host("docker://ID")`,
`local://` and `ssh://` backends are exactly this seam's idea):
- no timeout: every backend ends in `subprocess.Popen(...).communicate()` with no limit (ssh
  only has a connect timeout), so a hung `systemctl` or `journalctl` would hang the harness;
  and its docker backend's `docker exec` leaves the command running in the container when the
  client is killed, which a timeout must not do;
- no per-command environment or user: the user is fixed in the host spec (`docker://user@ID`,
  or `sudo` for the whole host), and env vars would have to be spliced into a shell string;
- commands are shell strings (`/bin/sh -c`, quoted with `%s` formatting), not argv;
- installing it registers a pytest11 plugin (`--hosts`, `--connection`, a `host` fixture) into
  every run of the acceptance suite, which a user's `pytest scenarios` would then carry;
- its value, the `host.file/service/package` assertion modules, is not what a driver needs.
So the seam is written here (argv, user, env, timeout), keeping testinfra's URL-like naming
(`runner_for("local://")`, `runner_for("docker://ID")`, `runner_for("ssh://user@host")`).
Re-checked for the ssh runner at 10.2.2 (still the newest release): its ssh backend is the same
`ssh ... 'shell string'` through `Popen.communicate()` with no timeout, so a command left hanging
on the far side by a dropped connection would hang the harness; here the command runs under
coreutils `timeout` on the target and the client has its own limit.
"""

from __future__ import annotations

import getpass
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

from harness.common.commands import Completed
from harness.common.errors import InfrastructureError


class CommandRunner(Protocol):
    name: str

    def run(self, argv: Sequence[str], *, user: str | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            input: str | None = None, timeout: float = 60.0) -> Completed: ...


def systemd_user_env(uid: int) -> dict[str, str]:
    """What `systemctl --user` and `journalctl --user` need to find a user's manager and bus."""
    return {"XDG_RUNTIME_DIR": f"/run/user/{uid}",
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path=/run/user/{uid}/bus"}


def runner_for(spec: str, **kwargs: str) -> CommandRunner:
    """`local://`, `docker://CONTAINER` (kwargs: docker_host, docker_cli) or
    `ssh://[USER@]HOST[:PORT]` (the ssh config: HARNESS_SSH_CONFIG, else ssh's own)."""
    scheme, _, rest = spec.partition("://")
    if scheme == "local" and not rest:
        return LocalRunner()
    if scheme == "docker" and rest:
        return DockerExecRunner(rest, **kwargs)
    if scheme == "ssh" and rest:
        return SshRunner.from_spec(spec, config=os.environ.get("HARNESS_SSH_CONFIG") or None)
    raise InfrastructureError(f"unknown command runner {spec!r} (local://, docker://ID, "
                              "ssh://[USER@]HOST[:PORT])")


class LocalRunner:
    """Commands on this host; another user through `runuser` (the harness runs as root)."""

    name = "local"

    def run(self, argv: Sequence[str], *, user: str | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            input: str | None = None, timeout: float = 60.0) -> Completed:
        argv = list(argv)
        if user is None or user == getpass.getuser():
            full = argv
            full_env = {**os.environ, **(env or {})}
        else:
            # runuser sets HOME, SHELL, USER and LOGNAME of the target user; the rest is given
            full = ["runuser", "-u", user, "--", "env",
                    *(f"{k}={v}" for k, v in (env or {}).items()), *argv]
            full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        return _run_killing_group(full, argv, full_env, cwd, input, timeout)


class DockerExecRunner:
    """Commands in a running container through the docker CLI.

    The command runs under coreutils `timeout` inside the container, so running out of time
    kills it there too (killing a `docker exec` client does not stop what it started).
    """

    def __init__(self, container: str, docker_host: str | None = None,
                 docker_cli: str = "docker") -> None:
        self.container = container
        self.docker_host = docker_host
        self.docker_cli = docker_cli
        self.name = f"docker://{container[:12]}"

    def run(self, argv: Sequence[str], *, user: str | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            input: str | None = None, timeout: float = 60.0) -> Completed:
        argv = list(argv)
        full = [self.docker_cli]
        if self.docker_host:
            full += ["-H", self.docker_host]
        full.append("exec")
        if input is not None:
            full.append("-i")
        if user is not None:
            full += ["-u", user]
        for key, value in (env or {}).items():
            full += ["-e", f"{key}={value}"]
        if cwd is not None:
            full += ["-w", cwd]
        full += [self.container, "timeout", "-k", "5", f"{timeout:g}", *argv]
        done = _run_killing_group(full, argv, dict(os.environ), None, input, timeout + 15)
        if done.returncode == 124 and "timed out" not in done.stderr:
            return Completed(argv, 124, done.stdout,
                             f"{done.stderr}timed out after {timeout:g} s in {self.name}")
        return done


# run "$@" as the user $1 on the target, from whichever login ssh got
_AS_USER = ('u=$1; shift; if [ "$(id -un)" = "$u" ]; then exec "$@"; '
            'elif [ "$(id -u)" = 0 ]; then exec runuser -u "$u" -- "$@"; '
            'else exec sudo -n -u "$u" -- "$@"; fi')


class SshRunner:
    """Commands on another host through the OpenSSH client, one connection per command.

    The remote side is `cd DIR && timeout -k 5 T [as USER] env K=V... ARGV`, every word
    shell-quoted, so the command is killed on the target when it runs out of time; the client
    gets the same limit plus a margin for the connection. Another user is reached as the login
    itself, through runuser when the login is root, else `sudo -n`. Exit 255 is ssh's own
    failure (unreachable host, refused key), with its message in stderr.
    """

    def __init__(self, host: str, *, login: str | None = None, port: int | None = None,
                 config: str | None = None, ssh: str = "ssh",
                 connect_timeout_s: float = 10.0) -> None:
        self.host = host
        self.login = login
        self.port = port
        self.config = config
        self.ssh = ssh
        self.connect_timeout_s = connect_timeout_s
        self.name = "ssh://" + (f"{login}@" if login else "") + host + \
            (f":{port}" if port else "")

    @classmethod
    def from_spec(cls, spec: str, config: str | None = None) -> SshRunner:
        rest = spec.removeprefix("ssh://")
        login, _, hostport = rest.rpartition("@")
        host, port = hostport, None
        if hostport.count(":") == 1:
            host, _, port_text = hostport.partition(":")
            if not port_text.isdigit():
                raise InfrastructureError(f"{spec!r}: the port must be a number")
            port = int(port_text)
        if not host or "/" in host:
            raise InfrastructureError(f"{spec!r}: expected ssh://[USER@]HOST[:PORT]")
        return cls(host, login=login or None, port=port, config=config)

    def ssh_argv(self) -> list[str]:
        argv = [self.ssh]
        if self.config:
            argv += ["-F", self.config]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s:g}",
                 "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=2"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.login:
            argv += ["-l", self.login]
        return [*argv, "--", self.host]

    def remote_command(self, argv: Sequence[str], *, user: str | None,
                       env: Mapping[str, str] | None, cwd: str | None, timeout: float) -> str:
        words = ["timeout", "-k", "5", f"{timeout:g}"]
        if user is not None:  # whoever the login is: itself, root (runuser), or sudo -n
            words += ["sh", "-c", _AS_USER, "sh", user]
        if env:
            words += ["env", *(f"{k}={v}" for k, v in env.items())]
        words += list(argv)
        command = " ".join(shlex.quote(w) for w in words)
        return f"cd {shlex.quote(cwd)} && {command}" if cwd else command

    def run(self, argv: Sequence[str], *, user: str | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            input: str | None = None, timeout: float = 60.0) -> Completed:
        argv = list(argv)
        remote = self.remote_command(argv, user=user, env=env, cwd=cwd, timeout=timeout)
        done = _run_killing_group([*self.ssh_argv(), remote], argv, dict(os.environ), None,
                                  input, timeout + self.connect_timeout_s + 10)
        if done.returncode == 124 and "timed out" not in done.stderr:
            return Completed(argv, 124, done.stdout,
                             f"{done.stderr}timed out after {timeout:g} s on {self.name}")
        return done


def _run_killing_group(full: list[str], argv: list[str], env: dict[str, str], cwd: str | None,
                       input: str | None, timeout: float) -> Completed:
    try:
        proc = subprocess.Popen(full, env=env, cwd=cwd, text=True, start_new_session=True,
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        return Completed(argv, 127, "", f"command not found: {full[0]}")
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return Completed(argv, 124, out or "", f"{err or ''}timed out after {timeout:g} s")
    return Completed(argv, proc.returncode, out, err)
