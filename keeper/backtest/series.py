"""The price / pool / OI series a backtest replays: its CSV form (read with validation, written back) and a
seeded synthetic generator. Pure apart from the explicit file functions; integers (on-chain units) only.

CSV (docs/backtest.md): one row per tick, header required, columns in any order:
  timestamp                    unix seconds, strictly increasing
  glp_supply                   GLP in whole GLP (≤ 18 decimals), > 0
  gas_price_gwei               optional; gwei (≤ 9 decimals); default: the run's constant
  price_<SYM>                  USD (≤ 8 decimals, the Chainlink answer), > 0
  pool_<SYM>, reserved_<SYM>   whole tokens (≤ the token's decimals)
  short_size_usd_<SYM>         USD (≤ 30 decimals): GMX globalShortSize
  short_avg_<SYM>              USD (≤ 30 decimals): GMX globalShortAveragePrice (0: no shorts)
  guaranteed_usd_<SYM>         optional; USD (≤ 30 decimals): GMX guaranteedUsd (default 0)
A malformed value raises `InputError` naming the data row (1 = first row after the header), the line
and the column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from keeper.errors import InputError

FEED_DECIMALS = 8
USD_DECIMALS = 30
GLP_DECIMALS = 18
GWEI_DECIMALS = 9


@dataclass(frozen=True)
class AssetSpec:
    """Static facts of a token the backtest knows (devnet values: keeper/devnet/deploy.py)."""

    symbol: str
    decimals: int
    is_stable: bool
    liquidation_threshold_bps: int
    ltv_bps: int
    borrow_rate_bps: int  # annual variable borrow rate, simple accrual per row


KNOWN_ASSETS: dict[str, AssetSpec] = {
    "USDC": AssetSpec("USDC", 6, True, 7_800, 7_500, 500),
    "WETH": AssetSpec("WETH", 18, False, 8_300, 8_000, 300),
    "WBTC": AssetSpec("WBTC", 8, False, 7_800, 7_300, 200),
}

PER_ASSET = ("price", "pool", "reserved", "short_size_usd", "short_avg", "guaranteed_usd")
OPTIONAL_PER_ASSET = ("guaranteed_usd",)


@dataclass(frozen=True, slots=True)
class Row:
    """One tick of the world outside the strategy, in on-chain units. Per-asset tuples follow `Series.specs`."""

    timestamp: int
    price: tuple[int, ...]  # Chainlink answer, 8 decimals
    pool: tuple[int, ...]  # token units
    reserved: tuple[int, ...]  # token units
    short_size: tuple[int, ...]  # USD × 1e30
    short_avg: tuple[int, ...]  # USD × 1e30
    guaranteed: tuple[int, ...]  # USD × 1e30
    glp_supply: int  # GLP units (1e-18)
    gas_price_wei: int | None


@dataclass(frozen=True)
class Series:
    specs: tuple[AssetSpec, ...]
    rows: tuple[Row, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(s.symbol for s in self.specs)


def _units(text: str, decimals: int, where: str, *, positive: bool = False) -> int:
    """A non-negative decimal string → integer units, exactly (more digits than `decimals` is an error)."""
    s = text.strip()
    whole, _, frac = s.partition(".")
    if not whole and not frac:
        raise InputError(where, f"expected a number, got {text!r:.40}")
    if not (whole == "" or whole.isdigit()) or not (frac == "" or frac.isdigit()):
        raise InputError(where, f"expected a non-negative decimal number, got {text!r:.40}")
    if len(frac) > decimals:
        raise InputError(where, f"{text!r:.40} has more than {decimals} decimal places")
    value = int(whole or "0") * int(10**decimals) + (int(frac) * int(10 ** (decimals - len(frac))) if frac else 0)
    if positive and value <= 0:
        raise InputError(where, f"must be positive, got {text!r:.40}")
    return value


def fmt_units(amount: int, decimals: int) -> str:
    """Integer units → the shortest exact decimal string (the inverse of the parser)."""
    whole, frac = divmod(amount, 10**decimals)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0")


def _same(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    return old if old == new else new


def _columns(header: Sequence[str], name: str) -> tuple[tuple[AssetSpec, ...], dict[str, int]]:
    index: dict[str, int] = {}
    for k, raw in enumerate(header):
        col = raw.strip()
        if col in index:
            raise InputError(f"{name}: header, column {col}", "duplicate column")
        index[col] = k
    symbols = {c.removeprefix("price_") for c in index if c.startswith("price_")}
    for sym in sorted(symbols):
        if sym not in KNOWN_ASSETS:
            raise InputError(f"{name}: header, column price_{sym}",
                             f"unknown asset {sym} (known: {', '.join(KNOWN_ASSETS)})")
    specs = tuple(spec for sym, spec in KNOWN_ASSETS.items() if sym in symbols)
    if not any(s.is_stable for s in specs):
        raise InputError(f"{name}: header", "needs a stable asset (price_USDC)")
    wanted = {"timestamp", "glp_supply"} | {f"{f}_{s.symbol}" for s in specs for f in PER_ASSET
                                            if f not in OPTIONAL_PER_ASSET}
    for col in sorted(wanted - set(index)):
        raise InputError(f"{name}: header, column {col}", "missing")
    allowed = wanted | {"gas_price_gwei"} | {f"{f}_{s.symbol}" for s in specs for f in OPTIONAL_PER_ASSET}
    for col in sorted(set(index) - allowed):
        raise InputError(f"{name}: header, column {col}", "unknown column")
    return specs, index


def parse_rows(lines: Iterable[Sequence[str]], name: str = "series") -> Series:
    """Validate and convert CSV records (header first) into a Series."""
    it = iter(lines)
    try:
        header = next(it)
    except StopIteration:
        raise InputError(name, "empty file (expected a header row)") from None
    specs, index = _columns(header, name)
    n = len(specs)
    dec = [s.decimals for s in specs]
    cols = {f: tuple(index.get(f"{f}_{s.symbol}") for s in specs) for f in PER_ASSET}
    gas_col = index.get("gas_price_gwei")
    rows: list[Row] = []
    prev: Row | None = None
    width = len(header)
    for r, record in enumerate(it, start=1):
        if not record or all(not c.strip() for c in record):
            continue
        at = f"{name}: row {r} (line {r + 1})"
        if len(record) != width:
            raise InputError(at, f"has {len(record)} fields, the header has {width}")

        def val(col: int | None, col_name: str, decimals: int, *, positive: bool = False,
                record: Sequence[str] = record, at: str = at) -> int:
            if col is None:
                return 0
            return _units(record[col], decimals, f"{at}, column {col_name}", positive=positive)

        ts_text = record[index["timestamp"]].strip()
        if not ts_text.isdigit():
            raise InputError(f"{at}, column timestamp", f"expected unix seconds, got {ts_text!r:.40}")
        ts = int(ts_text)
        if prev is not None and ts <= prev.timestamp:
            raise InputError(f"{at}, column timestamp", f"{ts} is not after the previous row's {prev.timestamp}")

        def per(field: str, decimals: Sequence[int], *, positive: bool = False) -> tuple[int, ...]:
            return tuple(val(cols[field][i], f"{field}_{specs[i].symbol}", decimals[i], positive=positive)
                         for i in range(n))

        usd = [USD_DECIMALS] * n
        row = Row(
            timestamp=ts,
            price=per("price", [FEED_DECIMALS] * n, positive=True),
            pool=per("pool", dec),
            reserved=per("reserved", dec),
            short_size=per("short_size_usd", usd),
            short_avg=per("short_avg", usd),
            guaranteed=per("guaranteed_usd", usd),
            glp_supply=val(index["glp_supply"], "glp_supply", GLP_DECIMALS, positive=True),
            gas_price_wei=None if gas_col is None else val(gas_col, "gas_price_gwei", GWEI_DECIMALS),
        )
        if prev is not None:  # share unchanged tuples with the previous row (a year of minutes fits in memory)
            row = Row(ts, _same(prev.price, row.price), _same(prev.pool, row.pool),
                      _same(prev.reserved, row.reserved), _same(prev.short_size, row.short_size),
                      _same(prev.short_avg, row.short_avg), _same(prev.guaranteed, row.guaranteed),
                      row.glp_supply, row.gas_price_wei)
        rows.append(row)
        prev = row
    if not rows:
        raise InputError(name, "no data rows")
    return Series(specs, tuple(rows))


def read_csv(path: str | Path) -> Series:
    p = Path(path)
    try:
        with p.open(newline="") as fh:
            return parse_rows(csv.reader(fh), p.name)
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror}") from None
    except csv.Error as exc:
        raise InputError(str(path), f"not a valid CSV file ({exc})") from None


def header(series: Series) -> list[str]:
    cols = ["timestamp", "glp_supply"]
    if any(r.gas_price_wei is not None for r in series.rows):
        cols.append("gas_price_gwei")
    for s in series.specs:
        cols.extend(f"{f}_{s.symbol}" for f in PER_ASSET)
    return cols


def write_csv(series: Series, path: str | Path) -> None:
    cols = header(series)
    gas = "gas_price_gwei" in cols
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fh = target.open("w", newline="")
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc.strerror}") from None
    with fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in series.rows:
            out = [str(r.timestamp), fmt_units(r.glp_supply, GLP_DECIMALS)]
            if gas:
                out.append(fmt_units(r.gas_price_wei or 0, GWEI_DECIMALS))
            for i, s in enumerate(series.specs):
                out.extend((fmt_units(r.price[i], FEED_DECIMALS), fmt_units(r.pool[i], s.decimals),
                            fmt_units(r.reserved[i], s.decimals), fmt_units(r.short_size[i], USD_DECIMALS),
                            fmt_units(r.short_avg[i], USD_DECIMALS), fmt_units(r.guaranteed[i], USD_DECIMALS)))
            w.writerow(out)


# --- synthetic generator ------------------------------------------------------------------------------------------

# The devnet's GMX market (keeper/devnet/deploy.py): pool, reserved, shorts (size, avg) and guaranteedUsd.
GEN_START_PRICE = {"USDC": Decimal(1), "WETH": Decimal(3_000), "WBTC": Decimal(60_000)}
GEN_POOL = {"USDC": 50_000_000, "WETH": 10_000, "WBTC": 500}
GEN_RESERVED = {"USDC": 18_000_000, "WETH": 3_000, "WBTC": 150}
GEN_SHORTS = {"WETH": (10_000_000, 3_100), "WBTC": (8_000_000, 62_000)}
GEN_GUARANTEED = {"WETH": 9_322_581, "WBTC": 9_258_065}
GEN_START_TS = 1_700_000_000


@dataclass(frozen=True)
class Jump:
    step: int
    symbol: str
    factor: Decimal  # price × factor from this step on (1.2 = a 20% jump)


def generate(steps: int, *, seed: int = 7, step_seconds: int = 60, jumps: Sequence[Jump] = (),
             volatility: Mapping[str, Decimal] | None = None, oi_period_steps: int | None = None,
             oi_amplitude: Decimal = Decimal("0.1"), gas_price_gwei: Decimal = Decimal(1),
             start_ts: int = GEN_START_TS) -> Series:
    """`steps` + 1 rows: GBM prices (`keeper.devnet.market.gbm_paths`, zero drift, seeded; WETH 80%, WBTC 60%
    annual volatility unless given) with scripted jumps, the devnet's pool and shorts, reserved amounts
    swinging as a triangle wave (±10% over 3 days) with guaranteedUsd following them at the current price
    (longs opened and closed at market, so the swing alone does not move AUM), GLP supply fixed so GLP
    starts at $1."""
    if steps < 0 or step_seconds <= 0:
        raise InputError("generate", "steps must be ≥ 0 and step seconds > 0")
    from keeper.devnet.market import Script, Shock, gbm_paths, oi_swing  # imports web3: only when generating

    vol = dict(volatility) if volatility is not None else {"WETH": Decimal("0.8"), "WBTC": Decimal("0.6")}
    for j in jumps:
        if j.symbol not in GEN_START_PRICE:
            raise InputError("jump", f"unknown asset {j.symbol}")
        vol.setdefault(j.symbol, Decimal(0))
    script = Script(seed=seed, step_seconds=step_seconds, volatility=vol,
                    shocks=tuple(Shock(j.step, j.symbol, j.factor) for j in jumps))
    path = gbm_paths(script, GEN_START_PRICE, steps)
    specs = tuple(KNOWN_ASSETS.values())
    period = oi_period_steps or max(2, 3 * 86_400 // step_seconds)
    usd30 = 10**USD_DECIMALS
    pool = tuple(GEN_POOL[s.symbol] * 10**s.decimals for s in specs)
    short_size = tuple(GEN_SHORTS.get(s.symbol, (0, 0))[0] * usd30 for s in specs)
    short_avg = tuple(GEN_SHORTS.get(s.symbol, (0, 0))[1] * usd30 for s in specs)
    guaranteed = tuple(GEN_GUARANTEED.get(s.symbol, 0) * usd30 for s in specs)
    gas_wei = int(gas_price_gwei * 10**GWEI_DECIMALS)
    rows: list[Row] = []
    supply = 0
    prev: Row | None = None
    for k, prices in enumerate(path):
        price = tuple(int(prices[s.symbol] * 10**FEED_DECIMALS) for s in specs)
        reserved = tuple(
            int(oi_swing(k, period, Decimal(GEN_RESERVED[s.symbol]), oi_amplitude if not s.is_stable else Decimal(0))
                * 10**s.decimals)
            for s in specs)
        if k == 0:  # GLP starts at $1: supply = AUM (GlpManager formula at the first prices)
            from keeper.backtest.world import aum_usd30

            aum = aum_usd30(specs, price, pool, reserved, short_size=short_size, short_avg=short_avg,
                            guaranteed=guaranteed)
            supply = aum * 10**GLP_DECIMALS // usd30
        if prev is not None:
            price = _same(prev.price, price)
            reserved = _same(prev.reserved, reserved)
            # longs opened / closed at the current price: guaranteedUsd moves with the reserved amount, so the
            # OI swing does not move AUM by itself (as in GMX, where size − collateral is guaranteed)
            if reserved != prev.reserved:
                guaranteed = tuple(
                    g + (r - q) * p * 10 ** (USD_DECIMALS - FEED_DECIMALS) // 10**s.decimals if not s.is_stable else g
                    for g, r, q, p, s in zip(prev.guaranteed, reserved, prev.reserved, price, specs, strict=True))
        row = Row(start_ts + k * step_seconds, price, pool, reserved, short_size, short_avg, guaranteed, supply,
                  gas_wei)
        rows.append(row)
        prev = row
    return Series(specs, tuple(rows))
