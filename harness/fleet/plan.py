"""A fleet file: the gateways of one release, and the order in which they take it.

    [fleet]
    name = "prod"
    on_failure = "rollback-wave"   # or "rollback-all"
    max_parallel = 2               # members per wave after the canaries

    [[members]]
    name = "canary"
    target = "targets/gw-a.toml"   # a target profile, relative to this file
    canary = true

    [[members]]
    name = "team"
    target = "targets/gw-b.toml"
    hosts = ["ssh://ops@gw1", "ssh://ops@gw2"]   # one profile, several hosts: team@gw1, team@gw2

The canaries are the first wave (upgraded, soaked and judged alone); the rest follow in waves
of `max_parallel`, in file order, each only after the one before passed. Every member takes the
same release: one package, one known-good and one candidate (one release lock for the fleet).
Every error names the file and the key, as for any input (exit 20).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from harness.common.errors import InputError
from harness.common.schema import Table, load_toml
from harness.targets.profile import TargetProfile, check_host, load_target

ON_FAILURE = ("rollback-wave", "rollback-all")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_MEMBERS = 64


@dataclass(frozen=True)
class Member:
    name: str
    profile: TargetProfile
    canary: bool
    key: str  # where it is declared: members[1] (a host list names the host too)


@dataclass(frozen=True)
class FleetPlan:
    path: Path
    sha256: str
    name: str
    on_failure: str
    max_parallel: int
    members: tuple[Member, ...]

    @property
    def waves(self) -> tuple[tuple[Member, ...], ...]:
        """The canaries first, then the others in file order, `max_parallel` at a time."""
        canaries = tuple(m for m in self.members if m.canary)
        rest = [m for m in self.members if not m.canary]
        steps = [tuple(rest[i:i + self.max_parallel])
                 for i in range(0, len(rest), self.max_parallel)]
        return (canaries, *steps)

    def wave_of(self, name: str) -> int:
        return next(i for i, wave in enumerate(self.waves) if any(m.name == name for m in wave))

    @property
    def provision(self) -> str:
        return self.members[0].profile.provision


def load_fleet(path: Path) -> FleetPlan:
    root, digest = load_toml(path)
    root.reject_unknown({"fleet", "members"})
    fleet = root.table("fleet")
    fleet.reject_unknown({"name", "on_failure", "max_parallel"})
    name = _name(fleet, "name")
    on_failure = fleet.str("on_failure", "rollback-wave", choices=ON_FAILURE)
    max_parallel = fleet.int("max_parallel", 1, minimum=1, maximum=MAX_MEMBERS)
    tables = root.tables("members")
    if not tables:
        raise root.fail("members", "expected at least one member ([[members]])")
    members = [m for table in tables for m in _members(path, table)]
    _check_members(root, members)
    return FleetPlan(path, digest, name, on_failure, max_parallel, tuple(members))


def _name(table: Table, key: str) -> str:
    value = table.str(key)
    if not _NAME.match(value):
        raise table.fail(key, "expected letters, digits, '.', '_' or '-' (at most 63), "
                              f"got {value!r}")
    return value


def _members(fleet_file: Path, table: Table) -> list[Member]:
    """One member, or one per host when the member names a list of hosts."""
    table.reject_unknown({"name", "target", "canary", "hosts"})
    name = _name(table, "name")
    target = Path(table.str("target"))
    target = target if target.is_absolute() else fleet_file.parent / target
    if not target.is_file():
        raise table.fail("target", f"no such target profile: {table.str('target')}")
    profile = load_target(target)  # its own errors name its own file and key
    canary = table.bool("canary", False)
    if "hosts" not in table.data:
        return [Member(name, profile, canary, table.prefix)]
    hosts = table.str_list("hosts")
    out = []
    for i, host in enumerate(hosts):
        check_host(host, table.source, f"{table.key('hosts')}[{i}]")
        label = f"{name}@{host.split('://', 1)[1].split('@')[-1]}"
        out.append(Member(label, replace(profile, host=host), canary,
                          f"{table.key('hosts')}[{i}]"))
    return out


def _check_members(root: Table, members: list[Member]) -> None:
    """One release for the whole fleet, unique names, at least one canary."""
    if len(members) > MAX_MEMBERS:
        raise root.fail("members", f"expected at most {MAX_MEMBERS} members, got {len(members)}")
    seen: dict[str, str] = {}
    first = members[0]
    for m in members:
        if m.name in seen:
            raise InputError(root.source, m.key, f"member name {m.name!r} is also {seen[m.name]}")
        seen[m.name] = m.key
        p, q = m.profile, first.profile
        if p.provision != q.provision:  # soaked only, or upgraded: never both in one release
            raise InputError(root.source, f"{m.key}.target",
                             f"a fleet's members are all attached (soaked as they run, -m soak)"
                             f" or all embedded (upgraded): {p.path.name} is {p.provision}, "
                             f"{first.name}'s {q.path.name} is {q.provision}")
        for what, mine, theirs in (("package", _package(p), _package(q)),
                                   ("known_good", p.known_good, q.known_good),
                                   ("candidate", p.candidate, q.candidate)):
            if mine != theirs:
                raise InputError(root.source, m.key,
                                 f"every member takes the same release: its {what} is {mine!r}, "
                                 f"{first.name}'s is {theirs!r}")
    if not any(m.canary for m in members):
        raise root.fail("members", "no canary: mark the member(s) to upgrade first canary = true")


def _package(profile: TargetProfile) -> str:
    return f"{profile.package.ecosystem}:{profile.package.name}"
