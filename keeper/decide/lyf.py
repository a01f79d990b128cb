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
    u   = T·E' / (p·x·(X − Dv)/X_o + y·(1 + k))

Integers at the boundary; Fractions inside. Rounding: LP to remove rounds UP and is raised unit by unit
until the exact post-trade leverage is ≤ target, so rounding never leaves the position above target.
Must not import web3, read a clock or do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from keeper.errors import InputError

BPS = 10_000


@dataclass(frozen=True)
class LyfState:
    """Pool and position in on-chain units. `price_*` is the oracle: stable units per volatile unit."""

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
    share = Fraction(s.lp_balance, s.lp_supply)
    x, y = share * s.reserve_volatile, share * s.reserve_stable
    assets = x * s.price + y + s.pending_rewards_stable
    equity = assets - s.debt_volatile * s.price - s.debt_stable
    if equity <= 0:
        raise InputError("position", "equity is not positive: the position is insolvent")
    return LyfPosition(x, y, assets, equity, assets / equity, x - s.debt_volatile)


def closed_form(s: LyfState, target: Fraction) -> tuple[Fraction, Fraction, Fraction]:
    """The exact continuous solution: (u = LP fraction kept, δ volatile bought, σ stable paid)."""
    pos = position(s)
    x, y = pos.volatile_in_lp, pos.stable_in_lp
    big_x, big_y = Fraction(s.reserve_volatile), Fraction(s.reserve_stable)
    dv, ds = Fraction(s.debt_volatile), Fraction(s.debt_stable)
    gamma = Fraction(BPS - s.fee_bps, BPS)
    x_o, y_o = big_x - x, big_y - y
    if x_o <= 0 or dv >= big_x:
        raise InputError("pool", "the position owns the whole pool or owes more than it holds")
    if dv >= x:
        k = (dv - x) / (gamma * (big_x - dv))
    else:
        k = -gamma * (x - dv) / (x_o + gamma * (x - dv))
    equity_after = y - ds + s.pending_rewards_stable - k * y_o
    u = target * equity_after / (s.price * x * (big_x - dv) / x_o + y * (1 + k))
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


def simulate(s: LyfState, lp_to_remove: int, delta_target: int) -> tuple[LyfPlan, Fraction]:
    """Execute a candidate in exact integer pool math; returns the plan and its final leverage."""
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
        if volatile_in > out_v:
            raise InputError("swap", "the volatile to sell exceeds what the LP removal yields")
        sold_for = _amount_out(volatile_in, x1, y1, s.fee_bps)
        x2, y2 = x1 + volatile_in, y1 - sold_for
        got_v, got_s = out_v - volatile_in, out_s + sold_for
        expected_out = sold_for
    else:
        x2, y2, got_v, got_s, expected_out = x1, y1, out_v, out_s, 0
    got_s += s.pending_rewards_stable  # may be negative: the swap costs more stable than the removal frees
    kept = s.lp_balance - lp_to_remove
    x_final = kept * x2 // supply1 if supply1 else 0
    y_final = kept * y2 // supply1 if supply1 else 0
    # Repay volatile down to exactly the LP's volatile (neutral to the unit); swap dust stays loose.
    repay_v = min(got_v, max(0, s.debt_volatile - x_final))
    repay_s = min(got_s, s.debt_stable)  # negative: borrow that much stable (the position allows it)
    dv, ds = s.debt_volatile - repay_v, s.debt_stable - repay_s
    leftover_v, leftover_s = got_v - repay_v, got_s - repay_s
    assets = (x_final + leftover_v) * s.price + y_final + leftover_s
    equity = assets - dv * s.price - ds
    leverage = assets / equity if equity > 0 else Fraction(10**9)
    traded_in, traded_out = (stable_in, expected_out) if stable_in else (expected_out, volatile_in)
    swap_price = Fraction(traded_in, traded_out) if traded_out else s.price
    slip = abs(swap_price / s.price - 1) * BPS if (stable_in or volatile_in) else Fraction(0)
    min_out = expected_out * (BPS - 50) // BPS
    plan = LyfPlan(
        lp_to_remove=lp_to_remove, stable_to_swap=stable_in, volatile_to_swap=volatile_in, min_out=min_out,
        repay_stable=repay_s, repay_volatile=repay_v, expected_out=expected_out, swap_price=swap_price,
        slippage_bps=slip, pool_price_after=Fraction(y2, x2), final_leverage=leverage,
        final_delta=x_final - dv,
    )
    return plan, leverage


def plan(s: LyfState, rules: LyfRules) -> LyfPlan:
    """The rebalance that restores target leverage and neutrality, in integers (see module doc).

    Removing LP can only lower leverage. When the target needs more leverage (u > 1), or when selling
    volatile to fix a long delta needs more volatile than the removal yields, the plan keeps as much LP
    as neutrality allows and reports the leverage it reaches (below target): re-levering is not a rebalance.
    """
    target = Fraction(rules.target_leverage_bps, BPS)
    u, _, _ = closed_form(s, target)
    pos = position(s)
    x, dv = pos.volatile_in_lp, Fraction(s.debt_volatile)
    x_o = s.reserve_volatile - x
    u = min(u, Fraction(1))
    if dv < x:  # long: the volatile sold must come out of the removed LP: (1−u)x ≥ (x − Dv)(X_o + u·x)/X_o
        u = min(u, dv * x_o / (x * (s.reserve_volatile - dv)))

    if u < 0:
        raise InputError("position", "target leverage unreachable by deleveraging")
    remove = -((-(1 - u) * s.lp_balance).__floor__())  # ceil: more removal, never above target
    best: LyfPlan | None = None
    step = max(1, s.lp_balance // 10**9)
    for _ in range(64):
        remove = min(remove, s.lp_balance)
        # δ for this integer removal: neutrality with the kept share (continuous, rounded to nearest)
        kept = Fraction(s.lp_balance - remove, s.lp_balance)
        x = Fraction(s.lp_balance, s.lp_supply) * s.reserve_volatile
        x_o = s.reserve_volatile - x
        d = (s.debt_volatile - x) * (x_o + kept * x) / x_o
        options = []
        for candidate in (round(d) + j for j in (-1, 0, 1)):
            try:
                options.append(simulate(s, remove, candidate)[0])
            except InputError:
                continue  # e.g. selling one unit more volatile than this removal yields
        if options:
            best = min(options, key=lambda p: (abs(p.final_delta), p.stable_to_swap + p.volatile_to_swap))
            if best.final_leverage <= target or remove >= s.lp_balance:
                break
        elif remove >= s.lp_balance:
            raise InputError("position", "no feasible rebalance: removing all LP cannot restore neutrality")
        remove += step  # 1e-9 of the LP per step moves leverage by ~1e-9: well inside the 1e-6 target
    if best is None:
        raise InputError("position", "no feasible rebalance found")
    return replace(best, min_out=best.expected_out * (BPS - rules.slippage_bps) // BPS)


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
