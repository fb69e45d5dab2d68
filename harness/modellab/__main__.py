"""python -m harness.modellab --host 127.0.0.1 --port 0 [--models FILE] [--time-scale S]"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

from harness.errors import ExitCode, HarnessError
from harness.modellab.behaviour import DEFAULT_MODELS, load_models
from harness.modellab.server import build_app


async def serve(host: str, port: int, app: web.Application) -> None:
    # handler_cancellation: a client that goes away cancels its handler, so hangs end too
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"modellab listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modellab", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        models = load_models(args.models) if args.models else DEFAULT_MODELS
    except HarnessError as exc:
        print(f"modellab: error: {exc}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    asyncio.run(serve(args.host, args.port, build_app(models, args.time_scale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
