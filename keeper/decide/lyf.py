"""Leveraged yield farming (LYF) on an x·y=k pool: the rebalance planner. Pure, exact arithmetic.

A position holds LP of a volatile/stable pool and owes both assets. One rebalance removes a fraction of
the LP, swaps on the same pool (stable → volatile after a price rise, volatile → stable after a fall),
and repays both debts so that afterwards (1) the volatile held through the LP equals the volatile debt
(delta-neutral) and (2) assets / equity equals the target leverage. docs/lyf.md derives the closed form:

    X_o = X − x (others' volatile in the pool),  u = 1 − f (LP kept),  γ = 1 − fee
    δ   = (Dv − x)(X_o + u·x)/X_o                     volatile bought (δ < 0: sold)
    k   = (Dv − x)/(γ(X − Dv))        if δ ≥ 0         stable paid per unit of others' + kept stable
        = −γ(x − Dv)/(X_o + γ(x − Dv)) otherwise
    E'  = y − Ds + R − k·(Y − y)                        equity after (independent of u)
    V   = p·x·(X − Dv)/X_o,  W = y·(1 + k)                 kept volatile value and kept stable per unit of u
    u   = T·E' / (V + W)         if V ≤ (T − 1)·W         (the freed stable only repays stable debt)
        = (T − 1)·E' / V         otherwise                (it repays all of it; the rest stays loose)

Loose volatile (L_v, the swap dust an earlier rebalance left in the position) counts in assets, as the
position contract counts it, and is spent on the volatile repayment: every formula uses Dv − L_v.

Integers at the boundary; Fractions inside. Rounding: LP to remove starts at the closed form's value rounded
UP; if the exact integer replay of the pool is still above target, the removal grows (doubling steps, then
bisection back to the smallest removal found at or below target). The search is finite (it ends at the
whole LP) and a plan is only returned when its exact post-trade leverage is ≤ target; otherwise `plan()`
raises. `lyf_input_from_json` validates a `keeper plan` LYF snapshot (JSON path and reason per field).
Must not import web3, read a clock or do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from fractions import Fraction

from keeper.errors import InputError

BPS = 10_000


UINT112 = 2**112 - 1  # UniswapV2 reserves
UINT256 = 2**256 - 1

# Inclusive ranges of every integer field; the dataclasses check them on construction (InputError naming the
# field), `lyf_input_from_json` before construction (naming the JSON path).
STATE_RANGES: dict[str, tuple[int, int]] = {
    "reserve_volatile": (1, UINT112),
    "reserve_stable": (1, UINT112),
    "lp_supply": (1, UINT256),
    "lp_balance": (0, UINT256),
    "debt_volatile": (0, UINT256),
    "debt_stable": (0, UINT256),
    "pending_rewards_stable": (0, UINT256),
    "price_num": (1, UINT256),  # a positive price
    "price_den": (1, UINT256),
    "fee_bps": (0, BPS - 1),  # a fee of 100% would make every swap output zero
    "loose_volatile": (0, UINT256),
}
RULE_RANGES: dict[str, tuple[int, int]] = {
    "target_leverage_bps": (BPS + 1, 100 * BPS),  # above 1× (1× has no debt to balance), at most 100×
    "leverage_band_bps": (0, 100 * BPS),
    "price_move_bps": (1, 100 * BPS),
    "delta_tolerance_bps": (0, 100 * BPS),
    "slippage_bps": (0, BPS - 1),  # min-out = expected × (1 − slippage): 100% would accept any output
    "deadline_seconds": (1, 10 * 365 * 86_400),
    "cost_gate_bps": (0, 100 * BPS),
}


_WHY = {
    "fee_bps": "the swap fee must be below 100%",
    "target_leverage_bps": "the target leverage must be above 1× (10000 bps) and at most 100×",
    "slippage_bps": "the min-out tolerance must be below 100%",
}


def _range_problem(name: str, value: object, bounds: tuple[int, int]) -> str | None:
    """Why `value` is not a valid integer for field `name` within `bounds`, or None."""
    # bool is an int subclass; JSON 1e400 parses as float('inf') and 3.0 as a float: all refused
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an integer, got {value!r:.40}"
    lo, hi = bounds
    if lo <= value <= hi:
        return None
    shown = str(value) if value.bit_length() < 128 else f"an integer of {len(str(abs(value)))} digits"
    limit = {UINT256: "2**256 - 1", UINT112: "2**112 - 1"}.get(hi, str(hi))
    if value < lo:
        rule = {0: "must not be negative", 1: "must be positive"}.get(lo, f"must be at least {lo}")
    else:
        rule = f"must be at most {limit}"
    return f"{rule}, got {shown}" + (f" ({_WHY[name]})" if name in _WHY else "")


def _check_ranges(obj: object, ranges: dict[str, tuple[int, int]]) -> None:
    for name, bounds in ranges.items():
        problem = _range_problem(name, getattr(obj, name), bounds)
        if problem is not None:
            raise InputError(name, problem)


@dataclass(frozen=True)
class LyfState:
    """Pool and position in on-chain units. `price_*` is the oracle: stable units per volatile unit.

    `loose_volatile` is volatile the position holds outside the LP (swap dust of an earlier rebalance): the
    contract counts it in assets and the rebalance may spend it on the volatile repayment. Loose stable has
    no field: it is spent and counted exactly like pending rewards, so readers add it to those.
    """

    reserve_volatile: int
    reserve_stable: int
    lp_supply: int
    lp_balance: int
    debt_volatile: int
    debt_stable: int
    pending_rewards_stable: int
    price_num: int  # oracle price as a fraction of smallest units: stable units per volatile unit
    price_den: int
    fee_bps: int = 30
    loose_volatile: int = 0

    def __post_init__(self) -> None:
        _check_ranges(self, STATE_RANGES)
        if self.lp_balance > self.lp_supply:
            raise InputError("lp_balance", f"exceeds lp_supply ({self.lp_balance} > {self.lp_supply})")

    @property
    def price(self) -> Fraction:
        return Fraction(self.price_num, self.price_den)


@dataclass(frozen=True)
class LyfRules:
    target_leverage_bps: int = 30_000  # 3.0×
    leverage_band_bps: int = 1_000  # rebalance outside target ± 0.10×
    price_move_bps: int = 1_000  # or when the oracle moved ≥ 10% since the last rebalance
    delta_tolerance_bps: int = 200  # or |LP volatile − volatile debt| > 2% of the debt
    slippage_bps: int = 50  # min-out tolerance below the expected swap output
    deadline_seconds: int = 48 * 3600  # must run at least this often (overrides the cost gate)
    # a non-urgent rebalance costing more than this share of what it corrects waits; the swap that fixes the
    # delta is itself the correction, so the ratio is about its slippage (fee + impact): 5% leaves room
    cost_gate_bps: int = 500

    def __post_init__(self) -> None:
        _check_ranges(self, RULE_RANGES)


@dataclass(frozen=True)
class LyfPosition:
    """Derived marks of a position at the oracle price (exact)."""

    volatile_in_lp: Fraction
    stable_in_lp: Fraction
    assets: Fraction  # stable units
    equity: Fraction
    leverage: Fraction
    delta: Fraction  # volatile units: LP volatile − volatile debt


@dataclass(frozen=True)
class LyfPlan:
    lp_to_remove: int
    stable_to_swap: int  # > 0: stable into the pool for volatile
    volatile_to_swap: int  # > 0: volatile into the pool for stable
    min_out: int  # minimum output of the swap (volatile if stable_to_swap, else stable)
    repay_stable: int  # negative: the rebalance borrows this much more stable to fund the swap
    repay_volatile: int
    expected_out: int
    swap_price: Fraction  # stable per volatile actually paid/received
    slippage_bps: Fraction  # vs the oracle, fee included
    pool_price_after: Fraction
    final_leverage: Fraction
    final_delta: int  # volatile units, LP volatile − volatile debt after
    reasons: tuple[str, ...] = ()


def position(s: LyfState) -> LyfPosition:
    """Marks at the oracle with the LP share exact; delta leaves loose volatile out, as the contract does."""
    share = Fraction(s.lp_balance, s.lp_supply)
    x, y = share * s.reserve_volatile, share * s.reserve_stable
    assets = (x + s.loose_volatile) * s.price + y + s.pending_rewards_stable
    equity = assets - s.debt_volatile * s.price - s.debt_stable
    if equity <= 0:
        raise InputError("position", "equity is not positive: the position is insolvent")
    return LyfPosition(x, y, assets, equity, assets / equity, x - s.debt_volatile)


INSOLVENT = Fraction(10**9)  # the leverage reported for equity ≤ 0 (the contract reports type(uint256).max)


def _leverage(volatile_held: int, stable_held: int, debt_volatile: int, debt_stable: int, price: Fraction) -> Fraction:
    """assets / equity of integer holdings at the oracle (exact; `INSOLVENT` when equity ≤ 0)."""
    assets = volatile_held * price + stable_held
    equity = assets - debt_volatile * price - debt_stable
    return assets / equity if equity > 0 else INSOLVENT


def onchain_leverage(s: LyfState) -> Fraction:
    """Leverage as `LyfPosition.leverageWad` marks it (LP token amounts floored; loose volatile, loose stable and
    pending rewards counted), exact: the contract's value is this × 1e18, floored."""
    x = s.lp_balance * s.reserve_volatile // s.lp_supply
    y = s.lp_balance * s.reserve_stable // s.lp_supply
    return _leverage(x + s.loose_volatile, y + s.pending_rewards_stable, s.debt_volatile, s.debt_stable, s.price)


def _hedged_debt(s: LyfState) -> int:
    """The volatile debt the LP must cover once loose volatile has repaid its part: Dv − L_v."""
    if s.loose_volatile > s.debt_volatile:
        raise InputError("loose_volatile", "exceeds the volatile debt: the position is net long outside its LP")
    return s.debt_volatile - s.loose_volatile


def closed_form(s: LyfState, target: Fraction) -> tuple[Fraction, Fraction, Fraction]:
    """The exact continuous solution: (u = LP fraction kept, δ volatile bought, σ stable paid)."""
    if s.lp_balance == 0:
        raise InputError("lp_balance", "the position holds no LP: there is nothing to rebalance")
    pos = position(s)
    x, y = pos.volatile_in_lp, pos.stable_in_lp
    big_x, big_y = Fraction(s.reserve_volatile), Fraction(s.reserve_stable)
    dv, ds = Fraction(_hedged_debt(s)), Fraction(s.debt_stable)
    gamma = Fraction(BPS - s.fee_bps, BPS)
    x_o, y_o = big_x - x, big_y - y
    if x_o <= 0 or dv >= big_x:
        raise InputError("pool", "the position owns the whole pool or owes more than it holds")
    if dv >= x:
        k = (dv - x) / (gamma * (big_x - dv))
    else:
        k = -gamma * (x - dv) / (x_o + gamma * (x - dv))
    equity_after = y - ds + s.pending_rewards_stable - k * y_o
    kept_volatile_value = s.price * x * (big_x - dv) / x_o  # x_f·p per unit of u
    kept_stable = y * (1 + k)  # y_f per unit of u
    if kept_volatile_value > (target - 1) * kept_stable:
        # the freed stable repays the whole stable debt; the rest stays loose (an asset): u·V + E' − u·W = T·E'
        u = (target - 1) * equity_after / kept_volatile_value
    else:
        u = target * equity_after / (kept_volatile_value + kept_stable)
    delta = (dv - x) * (x_o + u * x) / x_o
    sigma = k * (y_o + u * y)
    return u, delta, sigma


def _amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """Uniswap V2 getAmountOut (rounds down)."""
    with_fee = amount_in * (BPS - fee_bps)
    return with_fee * reserve_out // (reserve_in * BPS + with_fee)


def _amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """Uniswap V2 getAmountIn (rounds up, + 1 as the pair contract requires)."""
    if amount_out >= reserve_out:
        raise InputError("swap", "output exceeds the pool's reserve")
    return reserve_in * amount_out * BPS // ((reserve_out - amount_out) * (BPS - fee_bps)) + 1


def simulate(s: LyfState, lp_to_remove: int, delta_target: int, slippage_bps: int = 50) -> tuple[LyfPlan, Fraction]:
    """Execute a candidate in exact integer pool math, as `LyfPosition.rebalance` does; returns the plan and
    its final leverage. Loose volatile is spendable (the contract repays and swaps from its own balance)."""
    if not 0 <= lp_to_remove <= s.lp_balance:
        raise InputError("lp_to_remove", "outside [0, LP balance]")
    out_v = lp_to_remove * s.reserve_volatile // s.lp_supply
    out_s = lp_to_remove * s.reserve_stable // s.lp_supply
    x1, y1, supply1 = s.reserve_volatile - out_v, s.reserve_stable - out_s, s.lp_supply - lp_to_remove
    stable_in = volatile_in = 0
    if delta_target > 0:
        stable_in = _amount_in(delta_target, y1, x1, s.fee_bps)
        bought = _amount_out(stable_in, y1, x1, s.fee_bps)
        x2, y2 = x1 - bought, y1 + stable_in
        got_v, got_s = out_v + bought, out_s - stable_in
        expected_out = bought
    elif delta_target < 0:
        volatile_in = -delta_target
        if volatile_in > out_v + s.loose_volatile:
            raise InputError("swap", "the volatile to sell exceeds what the LP removal yields")
        sold_for = _amount_out(volatile_in, x1, y1, s.fee_bps)
        x2, y2 = x1 + volatile_in, y1 - sold_for
        got_v, got_s = out_v - volatile_in, out_s + sold_for
        expected_out = sold_for
    else:
        x2, y2, got_v, got_s, expected_out = x1, y1, out_v, out_s, 0
    got_v += s.loose_volatile
    got_s += s.pending_rewards_stable  # may be negative: the swap costs more stable than the removal frees
    kept = s.lp_balance - lp_to_remove
    x_final = kept * x2 // supply1 if supply1 else 0
    y_final = kept * y2 // supply1 if supply1 else 0
    # Repay volatile down to exactly the LP's volatile (neutral to the unit); swap dust stays loose.
    repay_v = min(got_v, max(0, s.debt_volatile - x_final))
    repay_s = min(got_s, s.debt_stable)  # negative: borrow that much stable (the position allows it)
    dv, ds = s.debt_volatile - repay_v, s.debt_stable - repay_s
    leverage = _leverage(x_final + got_v - repay_v, y_final + got_s - repay_s, dv, ds, s.price)
    traded_in, traded_out = (stable_in, expected_out) if stable_in else (expected_out, volatile_in)
    swap_price = Fraction(traded_in, traded_out) if traded_out else s.price
    slip = abs(swap_price / s.price - 1) * BPS if (stable_in or volatile_in) else Fraction(0)
    plan = LyfPlan(
        lp_to_remove=lp_to_remove, stable_to_swap=stable_in, volatile_to_swap=volatile_in,
        min_out=expected_out * (BPS - slippage_bps) // BPS, repay_stable=repay_s, repay_volatile=repay_v,
        expected_out=expected_out, swap_price=swap_price, slippage_bps=slip, pool_price_after=Fraction(y2, x2),
        final_leverage=leverage, final_delta=x_final - dv,
    )
    return plan, leverage


def _plan_at(s: LyfState, remove: int, slippage_bps: int) -> LyfPlan | None:
    """The most neutral (then the smallest-swap) integer plan removing `remove` LP; None if none is feasible.

    δ comes from neutrality with the kept share (continuous, docs/lyf.md), rounded to nearest; its
    neighbours are tried too because the pair's floors move the integer outcome by a unit.
    """
    kept = Fraction(s.lp_balance - remove, s.lp_balance)
    x = Fraction(s.lp_balance, s.lp_supply) * s.reserve_volatile
    x_o = s.reserve_volatile - x
    d = (_hedged_debt(s) - x) * (x_o + kept * x) / x_o
    options = []
    for candidate in (round(d) + j for j in (-1, 0, 1)):
        try:
            options.append(simulate(s, remove, candidate, slippage_bps)[0])
        except InputError:
            continue  # e.g. selling one unit more volatile than this removal yields
    if not options:
        return None
    return min(options, key=lambda p: (abs(p.final_delta), p.stable_to_swap + p.volatile_to_swap))


def plan(s: LyfState, rules: LyfRules) -> LyfPlan:
    """The rebalance that restores target leverage and neutrality, in integers (see module doc).

    Removing LP can only lower leverage. When the target needs more leverage (u > 1), or when selling
    volatile to fix a long delta needs more volatile than the removal yields, the plan keeps as much LP
    as neutrality allows and reports the leverage it reaches (below target): re-levering is not a rebalance.

    Termination and rounding: the first candidate removes ⌈(1 − u)·LP⌉; while its exact integer outcome is
    above target the removal grows by 1, 2, 4, … units (capped at the whole LP, so at most ~log2(LP) steps),
    then bisects back between the last removal above target and the first at or below it. Only an evaluated
    plan at or below target is returned; if even removing the whole LP stays above target (or cannot be made
    neutral) this raises InputError("plan", …) instead of returning a plan above target.
    """
    target = Fraction(rules.target_leverage_bps, BPS)
    u, _, _ = closed_form(s, target)
    pos = position(s)
    x, dv = pos.volatile_in_lp, Fraction(_hedged_debt(s))
    x_o = s.reserve_volatile - x
    u = min(u, Fraction(1))
    if dv < x:  # long: the volatile sold must come out of the removed LP: (1−u)x ≥ (x − Dv)(X_o + u·x)/X_o
        u = min(u, dv * x_o / (x * (s.reserve_volatile - dv)))
    if u < 0:
        raise InputError("position", "target leverage unreachable by deleveraging")

    def fits(p: LyfPlan | None) -> bool:
        return p is not None and p.final_leverage <= target

    first = -((-(1 - u) * s.lp_balance).__floor__())  # ceil: more removal, never above target
    found = _plan_at(s, first, rules.slippage_bps)
    if not fits(found):
        low, step = first, 1  # `low` is a removal known not to fit
        while True:
            high = min(first + step, s.lp_balance)
            found = _plan_at(s, high, rules.slippage_bps)
            if fits(found):
                break
            if high == s.lp_balance:
                raise InputError(
                    "plan", f"no LP removal reaches leverage ≤ {_dec(target)} and neutrality (even removing all "
                    f"{s.lp_balance} LP units): the position cannot be rebalanced by deleveraging")
            low, step = high, step * 2
        while high - low > 1:
            mid = (low + high) // 2
            candidate = _plan_at(s, mid, rules.slippage_bps)
            if fits(candidate):
                high, found = mid, candidate
            else:
                low = mid
    assert found is not None and found.final_leverage <= target  # by construction (see above)
    return found


@dataclass(frozen=True)
class LyfInput:
    """A `keeper plan` LYF snapshot, validated: the state, the rules and the price of the last rebalance."""

    state: LyfState
    rules: LyfRules
    last_price: Fraction | None


def _json_int(data: Mapping[str, object], key: str, path: str, bounds: tuple[int, int], default: int | None) -> int:
    raw = data.get(key, default)
    if raw is None:
        raise InputError(path, "missing")
    problem = _range_problem(key, raw, bounds)
    if problem is not None:
        raise InputError(path, problem)
    assert isinstance(raw, int)
    return raw


def lyf_input_from_json(data: Mapping[str, object]) -> LyfInput:
    """Validate a decoded LYF snapshot `{"kind": "lyf", <LyfState fields>, "rules": {...},
    "last_price_num": n, "last_price_den": d}` (rules and the last price optional). Every error is an
    InputError naming the JSON path (`lp_supply`, `rules.price_move_bps`) and the reason."""
    known = {"kind", "rules", "last_price_num", "last_price_den", *STATE_RANGES}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(str(unknown[0])[:60], "unknown field")
    defaults = {f.name: f.default for f in fields(LyfState) if isinstance(f.default, int)}
    values = {k: _json_int(data, k, k, bounds, defaults.get(k)) for k, bounds in STATE_RANGES.items()}
    state = LyfState(**values)
    rules_data = data.get("rules", {})
    if not isinstance(rules_data, Mapping):
        raise InputError("rules", f"expected an object, got {rules_data!r:.40}")
    unknown = sorted(set(rules_data) - set(RULE_RANGES))
    if unknown:
        raise InputError(f"rules.{str(unknown[0])[:60]}", "unknown rule")
    rule_defaults: dict[str, int] = {f.name: f.default for f in fields(LyfRules) if isinstance(f.default, int)}
    rules = LyfRules(**{k: _json_int(rules_data, k, f"rules.{k}", bounds, rule_defaults[k])
                        for k, bounds in RULE_RANGES.items()})
    has_num, has_den = "last_price_num" in data, "last_price_den" in data
    if has_num != has_den:
        raise InputError("last_price_den" if has_num else "last_price_num", "missing (give both or neither)")
    last = None
    if has_num:
        price_bounds = STATE_RANGES["price_num"]
        last = Fraction(_json_int(data, "last_price_num", "last_price_num", price_bounds, None),
                        _json_int(data, "last_price_den", "last_price_den", price_bounds, None))
    return LyfInput(state, rules, last)


def _dec(value: Fraction, places: int = 4) -> str:
    """Display only: a Fraction as a fixed-point string (no float)."""
    return f"{(Decimal(value.numerator) / Decimal(value.denominator)):.{places}f}"


@dataclass(frozen=True)
class LyfTrigger:
    fired: bool
    reasons: tuple[str, ...]


def triggers(
    s: LyfState,
    rules: LyfRules,
    last_price: Fraction | None,
    *,
    now: int | None = None,
    last_rebalance_at: int | None = None,
    gas_cost_stable: int = 0,
) -> LyfTrigger:
    """Leverage outside its band, oracle moved beyond its threshold, delta beyond tolerance, or the
    must-run-by deadline; then the decision core's cost/benefit gate for the non-urgent ones.

    Urgent (never gated): leverage above the band's top (liquidation side) and the deadline. The gate
    compares the plan's cost (swap fee and price impact at the oracle + `gas_cost_stable`) with what it
    corrects (|delta| at the oracle + the leverage excess in stable) and defers when cost/benefit is
    above `cost_gate_bps`.
    """
    pos = position(s)
    target = Fraction(rules.target_leverage_bps, BPS)
    reasons: list[str] = []
    urgent = False
    band = Fraction(rules.leverage_band_bps, BPS)
    if abs(pos.leverage - target) > band:
        reasons.append(f"leverage {_dec(pos.leverage)} outside {_dec(target, 2)} ± {_dec(band, 2)}")
        urgent = pos.leverage > target
    if last_price is not None and last_price > 0:
        move = abs(s.price / last_price - 1) * BPS
        if move >= rules.price_move_bps:
            reasons.append(f"price moved {_dec(move, 0)} bps ≥ {rules.price_move_bps} bps since last rebalance")
    if s.debt_volatile and abs(pos.delta) * BPS > rules.delta_tolerance_bps * s.debt_volatile:
        reasons.append(
            f"delta {_dec(pos.delta * 100 / s.debt_volatile, 2)}% of the volatile debt > "
            f"{rules.delta_tolerance_bps / 100:.2f}%"
        )
    if now is not None and last_rebalance_at is not None and now - last_rebalance_at >= rules.deadline_seconds:
        reasons.append(f"deadline: {now - last_rebalance_at} s since the last rebalance ≥ {rules.deadline_seconds} s")
        urgent = True
    if reasons and not urgent:
        candidate = plan(s, rules)
        swapped = candidate.stable_to_swap or candidate.volatile_to_swap * s.price
        cost = Fraction(swapped) * candidate.slippage_bps / BPS + gas_cost_stable
        benefit = abs(pos.delta) * s.price + max(pos.leverage - target, Fraction(0)) * pos.equity
        if benefit == 0 or cost * BPS > rules.cost_gate_bps * benefit:
            share = "∞" if benefit == 0 else _dec(cost * BPS / benefit, 2)
            return LyfTrigger(False, (*reasons, f"deferred by the cost gate: cost {share} bps of what it corrects "
                                               f"> {rules.cost_gate_bps} bps"))
    return LyfTrigger(bool(reasons), tuple(reasons))
