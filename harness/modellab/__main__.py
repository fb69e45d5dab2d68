"""python -m harness.modellab --host 127.0.0.1 --port 0 [--models FILE] [--time-scale S]

Prints exactly one line, `modellab listening on http://HOST:PORT`, once it accepts connections
(port 0 picks a free port), serves until SIGTERM or SIGINT, then exits 0. A bad models file or
option is one line on stderr, `modellab: error: ...`, and exit code 20.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from pathlib import Path

from harness.common.errors import ExitCode, HarnessError, InputError
from harness.modellab.behaviour import DEFAULT_MODELS, ModelBehaviour, load_models
from harness.modellab.server import build_app, start_server


def _guard_alive(folder: Path) -> int | None:
    """The PID of the guard watching over the run's deployment, if one runs."""
    try:
        pid = int((folder / "guard.pid").read_text().strip())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return pid if fields[0] != "Z" else None


async def _adopted(folder: Path, stop: asyncio.Event) -> None:
    """The harness died (its parent-death signal, SIGHUP, came): while its guard runs, the
    guard owns the lab (it needs it to prove the known-good, then stops it); else it ends."""
    pid = _guard_alive(folder)
    if pid is None:
        stop.set()
        return
    print(f"modellab: the harness is gone; its guard (PID {pid}) owns the lab until it ends",
          file=sys.stderr, flush=True)
    while not stop.is_set() and _guard_alive(folder) == pid:
        await asyncio.sleep(1.0)
    stop.set()


async def serve(host: str, port: int, models: dict[str, ModelBehaviour],
                time_scale: float, adoptable_by: Path | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers first: a SIGTERM right after the ready line must still end in a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: set[asyncio.Task[None]] = set()
    if adoptable_by is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: tasks.add(
            loop.create_task(_adopted(adoptable_by, stop))))
    runner, bound = await start_server(build_app(models, time_scale), host, port)
    try:
        print(f"modellab listening on http://{host}:{bound}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _fail(message: str, code: ExitCode) -> int:
    print(f"modellab: error: {message}", file=sys.stderr, flush=True)
    return int(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modellab", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", type=Path, help="TOML file of [models.<id>] tables")
    parser.add_argument("--adoptable-by", type=Path, metavar="GUARD_FOLDER",
                        help="when the parent dies (SIGHUP), keep serving while the guard of "
                        "this folder runs")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every delay (tests: 0.01 makes 70 s take 0.7 s)")
    args = parser.parse_args(argv)
    try:
        if not (math.isfinite(args.time_scale) and args.time_scale > 0):
            raise InputError("--time-scale", "", f"expected a positive number, got "
                                                 f"{args.time_scale!r}")
        models = load_models(args.models) if args.models else DEFAULT_MODELS
    except HarnessError as exc:
        return _fail(str(exc), exc.exit_code)
    # Warnings and errors (never the access log) go to stderr, which the ModelLab keeps as a
    # log file; client disconnects are handled and do not produce tracebacks.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args.host, args.port, models, args.time_scale, args.adoptable_by))
    except OSError as exc:  # cannot bind: address in use, bad host
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                     ExitCode.ABORTED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
