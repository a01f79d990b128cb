"""Pure model of `VaultManager.rebalance`: its pre-trade checks and its book crediting.

Owns `check_conservation` (the four conservation identities + structure, exactly as docs/contracts.md
states them), `check_bounds` (`BoundTooLoose`), `check_fills` (`FillOutsideBound`) and `apply_order`
(post-trade books incl. the surplus crediting rule), so the daemon and the tests can predict what the
contract will accept and what the books will read. Must not import web3, read the clock or do I/O.

Mirrors contracts/VaultManager.sol (spec: docs/contracts.md, `rebalance(Order)`):
* conservation in the contract's order: shape (lengths incl. `deltas.glp`, duplicate vaults and legs), GLP
  per asset (Σ_v deltas.glp[i] = leg i's glp, 0 without a leg), then per asset collateral, interest ≤
  unassignedDebt, debt, cash;
* bounds with the contract's integer arithmetic (`leg_bound`): minimumUsd >= ceil(givenUsd × (10_000 −
  maxSlippageBps) / 10_000), each value rounded down, tokens at their Chainlink answer (the contract's own
  feeds, not the oracle guard's median), GLP at getAum(false)/supply;
* surplus is credited per leg with that leg's own weights: a mint leg in asset i to the vaults with
  deltas.glp[i] > 0 pro rata to it, a redeem leg to cash[i] of the vaults with deltas.glp[i] < 0 pro rata
  to |deltas.glp[i]|; floor, the whole remainder to the largest weight (lowest id on a tie); a positive
  surplus with no such vault reverts `NoSurplusRecipient(asset)`;
* `InsufficientBook` is checked on the final book of each vault (GLP on the total Σ_i deltas.glp[i]).
Stricter than the contract (never built by the engine): a leg with glp == 0 or tokenAmount == 0 is
rejected as `InvalidAmount`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from keeper.net.alloc import split_contract
from keeper.net.errors import BoundTooLoose, ConservationViolated, ContractRevert
from keeper.net.model import ExecutedLeg, GlpLeg, Oracle, Order
from keeper.snapshot import Book
from keeper.units import BPS

GLP_INSTRUMENT, CASH_INSTRUMENT, COLLATERAL_INSTRUMENT, DEBT_INSTRUMENT = 0, 1, 2, 3


def check_conservation(order: Order, unassigned_debt: Sequence[int]) -> None:
    """Raise as `VaultManager.rebalance` would before executing anything; return None when it passes.

    declared = Σ over deltas, executed = what the order's lending and GLP legs move.
    """
    n = len(unassigned_debt)
    for arr in (order.supply, order.borrow, order.interest):
        if len(arr) != n:
            raise ContractRevert("LengthMismatch")
    seen: set[int] = set()
    mint_in = [0] * n
    redeem_out = [0] * n
    leg_glp = [0] * n
    for leg in order.glp:
        if not 0 <= leg.asset < n:
            raise ContractRevert("UnknownAsset", leg.asset)
        if leg.asset in seen:
            raise ContractRevert("DuplicateLeg", leg.asset)
        seen.add(leg.asset)
        if leg.glp == 0 or leg.token_amount <= 0:
            raise ContractRevert("InvalidAmount")
        leg_glp[leg.asset] = leg.glp
        if leg.glp > 0:
            mint_in[leg.asset] = leg.token_amount
        else:
            redeem_out[leg.asset] = leg.token_amount
    seen_vaults: set[int] = set()
    for d in order.deltas:
        if d.vault in seen_vaults:
            raise ContractRevert("DuplicateVault", d.vault)
        seen_vaults.add(d.vault)
        if len(d.glp) != n or len(d.cash) != n or len(d.collateral) != n or len(d.debt) != n:
            raise ContractRevert("LengthMismatch")
    for i in range(n):
        glp = sum(d.glp[i] for d in order.deltas)
        if glp != leg_glp[i]:
            raise ConservationViolated(GLP_INSTRUMENT, i, glp, leg_glp[i])
    for i in range(n):
        coll = sum(d.collateral[i] for d in order.deltas)
        if coll != order.supply[i]:
            raise ConservationViolated(COLLATERAL_INSTRUMENT, i, coll, order.supply[i])
        if order.interest[i] < 0 or order.interest[i] > unassigned_debt[i]:
            raise ContractRevert("InterestOverclaimed", i, order.interest[i], unassigned_debt[i])
        debt = sum(d.debt[i] for d in order.deltas)
        if debt != order.borrow[i] + order.interest[i]:
            raise ConservationViolated(DEBT_INSTRUMENT, i, debt, order.borrow[i] + order.interest[i])
        cash = sum(d.cash[i] for d in order.deltas)
        expect = order.borrow[i] - order.supply[i] - mint_in[i] + redeem_out[i]
        if cash != expect:
            raise ConservationViolated(CASH_INSTRUMENT, i, cash, expect)


def contract_usd(oracle: Oracle, asset: int, amount: int) -> int:
    """`VaultManager._usd`: amount × priceOf(asset) / 10^decimals, rounded down (USD × 1e30)."""
    if amount == 0:
        return 0
    unit: int = 10 ** oracle.decimals[asset]
    return amount * oracle.token_price[asset] // unit


def contract_glp_usd(oracle: Oracle, glp: int) -> int:
    """`VaultManager._glpUsd`: glp × getAum(false) / supply, rounded down; 0 while the supply is 0."""
    if glp == 0 or oracle.glp_supply == 0:
        return 0
    return glp * oracle.glp_aum // oracle.glp_supply


def required_usd(given: int, max_slippage_bps: int) -> int:
    """`_checkBounds`' required value: ceil(given × (10_000 − maxSlippageBps) / 10_000)."""
    return -(-given * (BPS - max_slippage_bps) // BPS)


def leg_bound(leg: GlpLeg, oracle: Oracle, max_slippage_bps: int) -> tuple[int, int]:
    """(minimumUsd, requiredUsd) of one leg exactly as `VaultManager._checkBounds` computes them."""
    token_usd = contract_usd(oracle, leg.asset, leg.token_amount)
    glp_usd = contract_glp_usd(oracle, abs(leg.glp))
    given, minimum = (token_usd, glp_usd) if leg.glp > 0 else (glp_usd, token_usd)
    return minimum, required_usd(given, max_slippage_bps)


def min_mint_glp(oracle: Oracle, asset: int, token_amount: int, max_slippage_bps: int) -> int:
    """The smallest GLP minimum a mint leg of `token_amount` may name and pass `_checkBounds`
    (floor(g × aum / supply) >= R  <=>  g >= ceil(R × supply / aum)); requires supply > 0."""
    r = required_usd(contract_usd(oracle, asset, token_amount), max_slippage_bps)
    return -(-r * oracle.glp_supply // oracle.glp_aum)


def max_redeem_glp(oracle: Oracle, asset: int, token_amount: int, max_slippage_bps: int) -> int:
    """The most GLP a redeem leg with minimum out `token_amount` may give and pass `_checkBounds`:
    ceil(floor(g × aum / supply) × keep / 10_000) <= M  <=>  floor(g × aum / supply) <= floor(M × 10_000 / keep)
    <=>  g <= ceil((U + 1) × supply / aum) − 1; requires supply > 0 and maxSlippageBps < 10_000."""
    m = contract_usd(oracle, asset, token_amount)
    u = m * BPS // (BPS - max_slippage_bps)
    return -(-(u + 1) * oracle.glp_supply // oracle.glp_aum) - 1


def check_bounds(order: Order, oracle: Oracle, max_slippage_bps: int) -> None:
    """`BoundTooLoose(asset, minimumUsd, requiredUsd)`, with the contract's integer arithmetic (each value
    rounds down, `required` rounds up): each leg's minimum must be worth >= (1 − maxSlippageBps) of what it
    gives up, tokens at `oracle` (must be the contract's feeds), GLP at getAum(false) / supply."""
    for leg in order.glp:
        if leg.glp == 0 and leg.token_amount == 0:
            continue
        minimum, required = leg_bound(leg, oracle, max_slippage_bps)
        if minimum < required:
            raise BoundTooLoose(
                f"leg in asset {leg.asset}: minimum worth {minimum} < required {required}"
                f" (maxSlippageBps {max_slippage_bps})"
            )


def check_funding(order: Order, held: Sequence[int]) -> None:
    """`InsufficientBalance` of the manager, walking `rebalance`'s execution order per asset with the redeem
    legs at their minimum out: redeems (+), repays (−), supplies of what is held, withdrawals (+), borrows
    (+), the deferred rest of the supplies (−), mints (−). `held` = the manager's balances before the order
    (a lower bound such as Σ books' cash makes the check conservative). Raises ContractRevert
    `InsufficientBalance(asset, balance, needed)` at the first step that lacks tokens."""
    for i in range(len(order.supply)):
        leg = order.leg(i)
        balance = held[i] + (leg.token_amount if leg is not None and leg.glp < 0 else 0)
        repay = max(-order.borrow[i], 0)
        if balance < repay:
            raise ContractRevert("InsufficientBalance", i, balance, repay)
        balance -= repay
        want = max(order.supply[i], 0)
        first = min(want, balance)
        balance -= first
        balance += max(-order.supply[i], 0) + max(order.borrow[i], 0)
        if balance < want - first:
            raise ContractRevert("InsufficientBalance", i, balance, want - first)
        balance -= want - first
        mint_in = leg.token_amount if leg is not None and leg.glp > 0 else 0
        if balance < mint_in:
            raise ContractRevert("InsufficientBalance", i, balance, mint_in)


def check_fills(order: Order, executed: Sequence[ExecutedLeg]) -> dict[int, int]:
    """`FillOutsideBound`: each leg executed at least its minimum; returns the surplus per asset."""
    by_asset = {e.asset: e for e in executed}
    if len(by_asset) != len(executed) or set(by_asset) != {leg.asset for leg in order.glp}:
        raise ContractRevert("LengthMismatch")
    surplus: dict[int, int] = {}
    for leg in order.glp:
        e = by_asset[leg.asset]
        if leg.glp > 0:
            if e.token_amount != leg.token_amount or e.glp < leg.glp:
                raise ContractRevert("FillOutsideBound", leg.asset, e.glp, leg.glp)
            surplus[leg.asset] = e.glp - leg.glp
        else:
            if e.glp != -leg.glp or e.token_amount < leg.token_amount:
                raise ContractRevert("FillOutsideBound", leg.asset, e.token_amount, leg.token_amount)
            surplus[leg.asset] = e.token_amount - leg.token_amount
    return surplus


def surplus_credits(order: Order, executed: Sequence[ExecutedLeg]) -> dict[int, tuple[int, tuple[int, ...]]]:
    """What the contract credits on top of the nominal deltas: vault → (GLP, cash per asset).

    Leg i's surplus goes only to the vaults that traded through leg i, weighted by `deltas.glp[i]`.
    """
    n = len(order.supply)
    surplus = check_fills(order, executed)
    extra_glp = {d.vault: 0 for d in order.deltas}
    extra_cash = {d.vault: [0] * n for d in order.deltas}
    for leg in order.glp:
        s = surplus[leg.asset]
        if s == 0:
            continue
        sign = 1 if leg.glp > 0 else -1
        weights = {d.vault: abs(d.glp[leg.asset]) for d in order.deltas if d.glp[leg.asset] * sign > 0}
        if not weights:
            raise ContractRevert("NoSurplusRecipient", leg.asset)
        for v, share in split_contract(s, weights).items():
            if leg.glp > 0:
                extra_glp[v] += share
            else:
                extra_cash[v][leg.asset] += share
    return {v: (extra_glp[v], tuple(extra_cash[v])) for v in extra_glp}


def apply_order(books: Sequence[Book], order: Order, executed: Sequence[ExecutedLeg]) -> tuple[Book, ...]:
    """Post-trade books as VaultManager writes them (`BookChanged`): nominal deltas + surplus crediting."""
    index = {b.vault_id: k for k, b in enumerate(books)}
    for d in order.deltas:
        if d.vault not in index:
            raise ContractRevert("UnknownVault", d.vault)
    credits = surplus_credits(order, executed)
    out = list(books)
    for d in order.deltas:
        b = books[index[d.vault]]
        extra_glp, extra_cash = credits[d.vault]
        glp = b.glp + d.glp_total + extra_glp
        cash = tuple(c + x + e for c, x, e in zip(b.cash, d.cash, extra_cash, strict=True))
        coll = tuple(c + x for c, x in zip(b.collateral, d.collateral, strict=True))
        debt = tuple(c + x for c, x in zip(b.debt, d.debt, strict=True))
        if glp < 0:
            raise ContractRevert("InsufficientBook", d.vault, GLP_INSTRUMENT, 0)
        for instrument, arr in ((CASH_INSTRUMENT, cash), (COLLATERAL_INSTRUMENT, coll), (DEBT_INSTRUMENT, debt)):
            for i, x in enumerate(arr):
                if x < 0:
                    raise ContractRevert("InsufficientBook", d.vault, instrument, i)
        out[index[d.vault]] = replace(b, glp=glp, cash=cash, collateral=coll, debt=debt)
    return tuple(out)
