"""The `keeper` command line. Owns argument parsing, exit codes and turning errors into messages.

Exit codes: 0 success; 1 the chain could not be read (one message), or an unexpected failure (a bug:
traceback); 2 user error (bad config — including an environment variable or secrets file that cannot be
decoded — input or arguments: one clear message, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from keeper.errors import ConfigError, KeeperError, ReadError

if TYPE_CHECKING:
    from keeper.config import KeeperSettings
    from keeper.store import Store


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


def _read_json(path: str, what: str) -> object:
    from keeper.errors import InputError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise InputError(what, f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(what, f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the decision (triggers, halts, plan) for a snapshot."""
    from keeper.decide import Rules, decide, plan_to_json_dict, render_table
    from keeper.snapshot import snapshot_from_json_dict

    data = _read_json(args.snapshot, "snapshot")
    if isinstance(data, dict) and data.get("kind") == "lyf":
        return _plan_lyf(data, args.format)
    snap = snapshot_from_json_dict(data)
    rules = {b.vault_id: Rules() for b in snap.books}
    if args.config:
        from keeper.config import load_config
        from keeper.daemon.app import rules_by_vault

        rules = rules_by_vault(load_config(args.config), [b.vault_id for b in snap.books])
    decision = decide(snap, rules, snap.memory)
    if args.format == "json":
        out = {
            "block": snap.block_number,
            "plan": plan_to_json_dict(decision.plan) if decision.plan else None,
            "fired": [r.reason() for r in decision.triggers if r.fired],
            "halts": [h.reason() for h in decision.halts],
        }
        print(json.dumps(out, indent=1))
        return 0
    fired = [r.reason() for r in decision.triggers if r.fired]
    print(f"block {snap.block_number}: {len(fired)} trigger(s) fired, {len(decision.halts)} halt(s)")
    for line in fired:
        print(f"  fired: {line}")
    for halt in decision.halts:
        print(f"  HALT: {halt.reason()} {halt.detail}")
    print(render_table(decision.plan) if decision.plan else "no plan: nothing to do")
    return 0


def _plan_lyf(data: dict[str, object], fmt: str) -> int:
    """An LYF snapshot: {"kind": "lyf", <LyfState fields>, optional "last_price_num"/"last_price_den", "rules"}.

    Validated by keeper.decide.lyf.lyf_input_from_json (a bad field exits 2 naming its JSON path). Prices are
    stable smallest units per volatile smallest unit; the table shows them with 12 significant digits.
    """
    from decimal import Context
    from fractions import Fraction

    from keeper.decide.lyf import lyf_input_from_json, plan, position, triggers

    def sig(value: Fraction) -> str:
        return str(Context(prec=12).divide(value.numerator, value.denominator))

    given = lyf_input_from_json(data)
    state, rules = given.state, given.rules
    fired = triggers(state, rules, given.last_price)
    pos = position(state)
    result = plan(state, rules) if fired.fired else None
    out: dict[str, Any] = {
        "leverage": str(pos.leverage.limit_denominator(10**12)),
        "fired": list(fired.reasons),
        "plan": None if result is None else {
            "lp_to_remove": result.lp_to_remove, "stable_to_swap": result.stable_to_swap,
            "volatile_to_swap": result.volatile_to_swap, "expected_out": result.expected_out,
            "min_out": result.min_out, "repay_stable": result.repay_stable, "repay_volatile": result.repay_volatile,
            "final_leverage": str(result.final_leverage.limit_denominator(10**12)),
            "final_delta": result.final_delta, "slippage_bps": str(result.slippage_bps.limit_denominator(10**6)),
            "swap_price": f"{result.swap_price.numerator}/{result.swap_price.denominator}",
            "pool_price_after": f"{result.pool_price_after.numerator}/{result.pool_price_after.denominator}",
        },
    }
    if fmt == "json":
        print(json.dumps(out, indent=1))
        return 0
    print(f"LYF position: leverage {sig(pos.leverage)}; " + ("; ".join(out["fired"]) or "within its band"))
    if result is None:
        print("no plan: nothing to do")
        return 0
    shown = {
        **out["plan"], "final_leverage": sig(result.final_leverage), "slippage_bps": sig(result.slippage_bps),
        "oracle_price": sig(state.price), "swap_price": sig(result.swap_price),
        "pool_price_after": sig(result.pool_price_after),
    }
    for key, value in shown.items():
        print(f"  {key}: {value}")
    return 0


def cmd_fees(args: argparse.Namespace) -> int:
    """Print fees and gas attributed to each vault, per rebalance."""
    from keeper.account import render_table
    from keeper.config import load_config
    from keeper.daemon.app import LEDGER_KEY, attribution_records

    store = _open_journal(load_config(args.config))
    try:
        records = attribution_records(store)
        ledger_text = store.get_state(LEDGER_KEY)
    finally:
        store.close()
    ledger = json.loads(ledger_text) if ledger_text else None
    if args.format == "json":
        print(json.dumps({"rebalances": [r.to_json_dict() for r in records], "ledger": ledger}, indent=1))
        return 0
    print(render_table(records) if records else "no rebalance has been accounted yet")
    if ledger is not None:
        statement = ledger.get("statement", {})
        for pool in ledger["ledger"]["pools"]:
            print(f"\nfee ledger, {pool['pool_id']}: {len(pool['acc']) - 1} rebalances, total cost "
                  f"{int(pool['total_cost']) / 10**6:,.6f} USD, charged {int(pool['total_charged']) / 10**6:,.6f} USD")
            owed = statement.get(pool["pool_id"], {})
            for holder in pool["holders"]:
                due = int(owed.get(holder["holder_id"], {}).get("owed", 0))
                print(f"  holder {holder['holder_id']}: charged {int(holder['charged']) / 10**6:,.6f} USD, owed "
                      f"{due / 10**6:,.6f} USD (settled at rebalance {holder['settled_at']})")
    return 0


def _open_journal(cfg: KeeperSettings) -> Store:
    """The daemon's journal for `cfg` (PostgreSQL when store.database_url is set, else the state dir's SQLite)."""
    from keeper.store import open_store

    url = cfg.store.database_url
    path = cfg.state_dir / "journal.sqlite3"
    if url is None and not path.exists():
        raise ConfigError(f"state_dir: no journal at {path} (has the keeper run with this config?)")
    try:
        return open_store(url.get_secret_value() if url else path)
    except Exception as exc:  # a driver's message may quote the URL (and its password): name the setting only
        where = "store.database_url" if url else f"state_dir: journal {path}"
        raise ConfigError(f"{where}: cannot open the journal ({exc.__class__.__name__})") from None


# The operator's halt acknowledgements: a JSON object {halt key: unix timestamp} in the journal's state
# table, written by `keeper ack-halt` and read by the daemon every tick (into Memory.acks). A halt raised
# at `since` is acknowledged by an entry >= since; the timestamp is the chain's latest block time.
HALT_ACKS_KEY = "halt-acks"


def current_halts(store: Store) -> dict[str, int]:
    """Halt key → timestamp since which it is raised, from the daemon's persisted decision memory."""
    from keeper.daemon.app import MEMORY_KEY
    from keeper.snapshot import memory_from_json_dict

    text = store.get_state(MEMORY_KEY)
    if text is None:
        return {}
    try:
        memory = memory_from_json_dict(json.loads(text))
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"journal state {MEMORY_KEY}: unreadable decision memory ({exc})") from None
    return dict(memory.halts)


def halt_acks(store: Store) -> dict[str, int]:
    """The stored acknowledgements; ConfigError when the entry is not {str: non-negative int}."""
    text = store.get_state(HALT_ACKS_KEY)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in data.items()
    ):
        raise ConfigError(f"journal state {HALT_ACKS_KEY}: expected a JSON object of halt key → unix timestamp; "
                          "fix or delete the entry (nothing was written)")
    return dict(data)


def acknowledge_halts(store: Store, keys: Sequence[str], timestamp: int) -> dict[str, int]:
    """Stamp `keys` (each a current halt) with `timestamp`, merged into the stored acknowledgements; returns
    what is stored now. An unknown key writes nothing and raises an InputError listing the current halts."""
    halts = current_halts(store)
    _known(halts, keys)
    for key in keys:
        if timestamp < halts[key]:
            raise ReadError(f"the chain's latest block time {timestamp} is older than halt {key} (raised at "
                            f"{halts[key]}): the endpoint lags; nothing was written")
    acks = {**halt_acks(store), **{key: timestamp for key in keys}}
    store.put_state(HALT_ACKS_KEY, json.dumps(acks, sort_keys=True))
    return acks


def _known(halts: dict[str, int], keys: Sequence[str]) -> None:
    from keeper.errors import InputError

    unknown = [k for k in keys if k not in halts]
    if unknown:
        listing = ", ".join(sorted(halts)) or "none"
        raise InputError(unknown[0], f"not a current halt (current halts: {listing})")


def _latest_block(cfg: KeeperSettings) -> tuple[int, int]:
    """(number, timestamp) of the latest block from the first configured endpoint that answers."""
    from keeper.chain.rpc import connect

    failures: list[str] = []
    for i, url in enumerate(cfg.chain.rpc_urls):
        try:
            w3 = connect(url, cfg.chain.chain_id, timeout=cfg.chain.request_timeout_seconds)
            block = w3.eth.get_block("latest")
            return int(block["number"]), int(block["timestamp"])
        except ReadError:
            failures.append(f"rpc_urls[{i}] did not answer")
        except ConfigError:
            raise
        except Exception as exc:
            failures.append(f"rpc_urls[{i}]: {exc.__class__.__name__}")
    raise ReadError("no endpoint gave the latest block (" + "; ".join(failures) + ")")


def cmd_ack_halt(args: argparse.Namespace) -> int:
    """Acknowledge a volatility-band halt so the daemon trades that vault again; --list shows halts."""
    from keeper.config import load_config

    cfg = load_config(args.config)
    store = _open_journal(cfg)
    try:
        if args.keys:
            _known(current_halts(store), args.keys)  # before the chain is asked: an unknown key costs no RPC
            number, timestamp = _latest_block(cfg)
            acknowledge_halts(store, args.keys, timestamp)
            for key in args.keys:
                print(f"acknowledged {key} at {timestamp} (block {number}); the daemon trades again from its next tick")
        if args.list or not args.keys:
            _print_halts(current_halts(store), halt_acks(store))
    finally:
        store.close()
    return 0


def _print_halts(halts: dict[str, int], acks: dict[str, int]) -> None:
    print(f"current halts ({len(halts)}):" if halts else "current halts: none")
    for key, since in sorted(halts.items()):
        ack = acks.get(key)
        state = f"acknowledged at {ack}" if ack is not None and ack >= since else "not acknowledged"
        print(f"  {key}  raised at {since}  {state}")
    stale = sorted(k for k in acks if k not in halts)
    if stale:
        print("acknowledgements of halts no longer raised: " + ", ".join(f"{k}={acks[k]}" for k in stale))


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config, then the chain, contracts, role, balance."""
    from keeper.config import load_config
    from keeper.daemon.check import check_world

    cfg = load_config(args.config)
    print(f"config {args.config}: valid")
    problems = check_world(cfg, print)
    if problems:
        print(f"{problems} problem(s) found", file=sys.stderr)
        return 2
    print("all checks passed")
    return 0


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the yielded event instead of killing the process, from the moment this is
    entered: a signal that arrives while anvil starts or the contracts deploy still stops anvil cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def cmd_devnet(args: argparse.Namespace) -> int:
    """Start anvil, deploy the reference system, run until Ctrl-C."""
    from keeper.devnet.session import start_devnet

    # the handlers are in place before anything is started or printed: whoever reads "SIGTERM stops anvil"
    # and sends it at once gets a clean stop, not the default disposition
    with _stop_signals() as stop, start_devnet(
        port=args.port, block_time=args.block_time, config_out=Path(args.config_out), host=args.host
    ) as dev:
        if not stop.is_set():
            print(dev.describe())
            print(f"config written to {args.config_out}; Ctrl-C or SIGTERM stops anvil (pid {dev.anvil.pid})")
            sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    print("devnet stopped")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Devnet + the real daemon + a market simulator; live table, summary, report."""
    from keeper.devnet.demo import options_from_args, run_demo

    return run_demo(options_from_args(args))  # a bad flag value: InputError naming the flag (exit 2)


def cmd_backtest(args: argparse.Namespace) -> int:
    """Replay a price/OI series offline; compare trigger policies."""
    from keeper.backtest.command import run

    return run(args)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r:.20}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} out of range 0-65535")
    return port


class _HelpFormatter(argparse.HelpFormatter):
    """Keeps every subcommand's description on its own line (argparse under-measures indented subcommands)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length += 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keeper",
        description="Keeps delta-neutral multi-vault GLP strategies neutral by executing on-chain rebalances.",
        formatter_class=_HelpFormatter,
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
    p.add_argument("--metrics-port", type=_port, default=None, help="override metrics.port")

    p = add("snapshot", cmd_snapshot)
    p.add_argument("--config", required=True, help="config file (TOML)")
    p.add_argument("--block", type=int, default=None, help="block number (default: latest)")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")

    p = add("plan", cmd_plan)
    p.add_argument("--snapshot", required=True, help="snapshot JSON file (from `keeper snapshot`), or - for stdin")
    p.add_argument("--config", default=None, help="config file for per-vault rules (default: the issue's defaults)")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = add("fees", cmd_fees)
    p.add_argument("--config", required=True, help="config file (TOML)")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = add("check-config", cmd_check_config)
    p.add_argument("--config", required=True, help="config file (TOML)")

    p = add("ack-halt", cmd_ack_halt)
    p.add_argument("--config", required=True, help="config file (TOML): its journal and RPC endpoints")
    p.add_argument("--list", action="store_true", help="print the current halts and acknowledgements (default "
                                                         "when no KEY is given)")
    p.add_argument("keys", nargs="*", metavar="KEY", help="halt key to acknowledge, e.g. band:1:WETH")

    p = add("demo", cmd_demo)
    # values are checked by keeper.devnet.demo.options_from_args (range, units; a bad one exits 2 naming the flag)
    p.add_argument("--state-dir", default=".keeper/demo", help="where the demo writes its config, log and report")
    p.add_argument("--days", help="simulated days, 1-365 (default 8)")
    p.add_argument("--step-hours", help="simulated hours per step, a divisor of 24 (default 2)")
    p.add_argument("--seed", help="market path seed, >= 0 (default 11)")
    p.add_argument("--vol", help="annual volatility in %%, 0-500: one number for WETH and WBTC or per asset "
                                 "(default WETH=80,WBTC=60)")
    p.add_argument("--crash-day", help="simulated day of the crash, 0 < day <= --days (default 3/8 of the run)")
    p.add_argument("--crash-pct", help="price lost at the crash in %%, 0 <= pct < 100, one number or per asset "
                                       "(default WETH=22,WBTC=18; 0: none)")
    p.add_argument("--rally-day", help="simulated day of the rally, 0 < day <= --days (default 5/8 of the run)")
    p.add_argument("--rally-pct", help="price gained at the rally in %%, 0-1000, one number or per asset "
                                       "(default WETH=30,WBTC=25; 0: none)")
    p.add_argument("--step-wall-seconds", help="real seconds of blocks the daemon gets per step, 0.05-60 (default 0.6)")
    p.add_argument("--no-live", action="store_true", help="print periodic tables instead of a live screen")

    p = add("backtest", cmd_backtest)
    from keeper.backtest.command import add_arguments as backtest_arguments

    backtest_arguments(p)
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
