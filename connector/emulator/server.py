"""`personalize-connector emulator`: run the emulated service until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import sys

from connector.emulator.app import Config, Emulator
from connector.emulator.http import serve
from connector.emulator.storage import MemoryStore, SqliteStore, Store

log = logging.getLogger(__name__)


def make_store(db: str | None) -> Store:
    return SqliteStore(db) if db else MemoryStore()


async def run(emulator: Emulator, host: str, port: int) -> None:
    server, connections = await serve(emulator.handle, host, port)
    bound = server.sockets[0].getsockname()
    # Scripts and the test fixture wait for this exact line (and read the port from it: --port 0 works).
    print(f"emulator listening on http://{host}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        for connection in list(connections):
            connection.close()
        await server.wait_closed()


def run_from_cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.max_requests_per_second <= 0:
        print("--max-requests-per-second must be positive", file=sys.stderr)
        return 2
    try:
        store = make_store(args.db)
    except sqlite3.Error as exc:
        print(f"cannot open --db {args.db}: {exc}", file=sys.stderr)
        return 2
    config = Config(
        tracking_ids=frozenset(args.tracking_id or ()),
        dataset_arns=frozenset(getattr(args, "dataset_arn", None) or ()),
        max_requests_per_second=args.max_requests_per_second,
    )
    emulator = Emulator(store, config)
    try:
        asyncio.run(run(emulator, args.host, args.port))
    except OSError as exc:
        print(f"emulator cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()  # flushes pending SQLite rows
    return 0
