"""The `keeper` command line. Owns argument parsing, exit codes and turning errors into messages.

Exit codes: 0 success, 1 unexpected failure (a bug: traceback), 2 user error (bad config, input or
arguments: one clear message, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from keeper.errors import ConfigError, KeeperError, ReadError


def _connect(config_path: str) -> tuple[object, object]:
    from keeper.chain.reader import Addresses, SnapshotReader
    from keeper.chain.rpc import connect
    from keeper.config import load_config

    cfg = load_config(config_path)
    w3 = connect(cfg.chain.rpc_urls[0], cfg.chain.chain_id, timeout=cfg.chain.request_timeout_seconds)
    c = cfg.contracts
    reader = SnapshotReader(
        w3,
        Addresses(c.vault_manager, c.multicall, c.gmx_vault, c.glp_manager, c.reward_router, c.pool, c.glp),
        keeper_address=cfg.keeper_address(),
    )
    return cfg, reader


def cmd_status(args: argparse.Namespace) -> int:
    """Print vault books, health factor, GLP, prices, balance."""
    from keeper.chain.reader import SnapshotReader
    from keeper.report.status import render_json, render_table

    _, reader = _connect(args.config)
    assert isinstance(reader, SnapshotReader)
    snap = reader.read(args.block)
    if args.format == "json":
        print(json.dumps(render_json(snap), indent=2))
    else:
        print(render_table(snap))
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write one block's on-chain snapshot as JSON."""
    from keeper.chain.reader import SnapshotReader

    _, reader = _connect(args.config)
    assert isinstance(reader, SnapshotReader)
    snap = reader.read(args.block)
    text = json.dumps(snap.to_json_dict(), indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"snapshot of block {snap.block_number} written to {args.output}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the keeper daemon until SIGTERM/SIGINT (the product)."""
    from keeper.config import load_config
    from keeper.daemon.app import KeeperApp

    cfg = load_config(args.config)
    if args.dry_run:
        cfg = cfg.model_copy(update={"safety": cfg.safety.model_copy(update={"dry_run": True})})
    if args.metrics_port is not None:
        cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"port": args.metrics_port})})
    return KeeperApp(cfg).run()


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def cmd_devnet(args: argparse.Namespace) -> int:
    """Start anvil, deploy the reference system, run until Ctrl-C."""
    from keeper.devnet.session import start_devnet

    with start_devnet(
        port=args.port, block_time=args.block_time, config_out=Path(args.config_out), host=args.host
    ) as dev:
        print(dev.describe())
        print(f"config written to {args.config_out}; Ctrl-C or SIGTERM stops anvil (pid {dev.anvil.pid})")
        sys.stdout.flush()
        _wait_for_signal()
    print("devnet stopped")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Devnet up, deploy, print every vault's state, stop everything."""
    from keeper.chain.reader import SnapshotReader
    from keeper.devnet.session import start_devnet
    from keeper.report.status import render_table

    out = Path(args.state_dir)
    out.mkdir(parents=True, exist_ok=True)
    with start_devnet(port=None, block_time=None, config_out=out / "devnet.toml") as dev:
        print(dev.describe())
        _, reader = _connect(str(out / "devnet.toml"))
        assert isinstance(reader, SnapshotReader)
        print()
        print(render_table(reader.read(), dev.vault_names()))
    print(f"\ndevnet stopped; config left at {out / 'devnet.toml'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keeper",
        description="Keeps delta-neutral multi-vault GLP strategies neutral by executing on-chain rebalances.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        doc = (func.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=doc)
        p.set_defaults(func=func)
        return p

    p = add("devnet", cmd_devnet)
    p.add_argument("--port", type=int, default=None, help="anvil port (default: a free port)")
    p.add_argument("--host", default="127.0.0.1", help="interface anvil listens on (default: 127.0.0.1)")
    p.add_argument("--block-time", type=float, default=None, help="seconds per block (default: automine)")
    p.add_argument("--config-out", default="devnet.toml", help="where to write the config (default: devnet.toml)")

    p = add("status", cmd_status)
    p.add_argument("--config", required=True, help="config file (TOML)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--block", type=int, default=None, help="block number (default: latest)")

    p = add("run", cmd_run)
    p.add_argument("--config", required=True, help="config file (TOML)")
    p.add_argument("--dry-run", action="store_true", help="decide, net and simulate; never sign")
    p.add_argument("--metrics-port", type=int, default=None, help="override metrics.port")

    p = add("snapshot", cmd_snapshot)
    p.add_argument("--config", required=True, help="config file (TOML)")
    p.add_argument("--block", type=int, default=None, help="block number (default: latest)")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")

    p = add("demo", cmd_demo)
    p.add_argument("--state-dir", default=".keeper/demo", help="where the demo writes its config and reports")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from keeper import log

    log.configure()
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ReadError as exc:
        print(f"error: cannot read the chain: {exc}", file=sys.stderr)
        return 1
    except KeeperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
