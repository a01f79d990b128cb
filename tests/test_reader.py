"""The snapshot reader reads the lending pool through Aave v3's own interface only, against the devnet.

Black-box: the aggregate3 calldata the reader sends is decoded and every call to the Pool or a reserve
token must be one of Aave v3's views; the snapshot's lending fields equal what those views return; the
reserve's total debt counts every borrower and sets the decision's borrow room.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_abi.abi import decode
from eth_utils.crypto import keccak
from web3 import Web3
from web3.providers import HTTPProvider

from keeper.chain.reader import Addresses, SnapshotReader, decode_reserve_configuration
from keeper.decide.decision import _borrow_room
from keeper.devnet.deploy import DEV_ACCOUNTS, Deployment, _deploy, send
from keeper.errors import InputError, ReadError
from keeper.snapshot import Snapshot, snapshot_from_json_dict

pytestmark = pytest.mark.anvil

MAX = 2**256 - 1


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


AAVE_POOL_VIEWS = {_selector(s): s for s in ("getUserAccountData(address)", "getReserveData(address)")}
AAVE_TOKEN_VIEWS = {_selector(s): s for s in ("balanceOf(address)", "totalSupply()")}


def _reader(w3: Web3, d: Deployment, vault_manager: str | None = None) -> SnapshotReader:
    addresses = Addresses(
        vault_manager or d.vault_manager, d.multicall, d.gmx_vault, d.glp_manager, d.reward_router, d.pool, d.glp
    )
    return SnapshotReader(w3, addresses, keeper_address=d.keeper)


def _reserve_tokens(c: Any, asset: str) -> tuple[Any, Any]:
    data = c("Pool").functions.getReserveData(asset).call()
    return c("AToken", data[8]), c("VariableDebtToken", data[10])


def test_every_lending_call_is_an_aave_v3_view(anvil: Any, deployment: Deployment, c: Any) -> None:
    sent: list[str] = []

    class Recording(HTTPProvider):
        def make_request(self, method: Any, params: Any) -> Any:
            if method == "eth_call":
                sent.append(params[0]["data"])
            return super().make_request(method, params)

    w3 = Web3(Recording(anvil.url))
    reader = _reader(w3, deployment)
    reader.read()
    sent.clear()
    reader.read()
    assert len(sent) == 1  # one aggregate3 per tick
    data = bytes.fromhex(sent[0][2:])
    assert data[:4] == _selector("aggregate3((address,bool,bytes)[])")
    (calls,) = decode(["(address,bool,bytes)[]"], data[4:])
    tokens = {Web3.to_checksum_address(a) for s in deployment.tokens.values() for a in
              (c("Pool").functions.getReserveData(s).call()[i] for i in (8, 10))}
    pool = Web3.to_checksum_address(deployment.pool)
    seen = {"pool": set(), "tokens": set()}
    for raw_target, _allow, calldata in calls:
        target = Web3.to_checksum_address(raw_target)
        if target == pool:
            assert calldata[:4] in AAVE_POOL_VIEWS, f"non-Aave Pool call {calldata[:4].hex()}"
            seen["pool"].add(AAVE_POOL_VIEWS[calldata[:4]])
        elif target in tokens:
            assert calldata[:4] in AAVE_TOKEN_VIEWS, f"non-ERC20 reserve token call {calldata[:4].hex()}"
            seen["tokens"].add(AAVE_TOKEN_VIEWS[calldata[:4]])
    assert seen == {"pool": set(AAVE_POOL_VIEWS.values()), "tokens": set(AAVE_TOKEN_VIEWS.values())}


def test_lending_fields_equal_the_aave_views(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    d, pool = deployment, c("Pool")
    user = d.users[1]
    # a second borrower: the reserve's total debt is more than the strategy account's own
    send(w3, c("WETH").functions.mint(user, 100 * 10**18), d.owner)
    send(w3, c("WETH").functions.approve(d.pool, MAX), user)
    send(w3, pool.functions.supply(d.tokens["WETH"], 100 * 10**18, user, 0), user)
    send(w3, pool.functions.borrow(d.tokens["WBTC"], 10**8, 2, 0, user), user)
    snap = _reader(w3, d).read()
    at = {"block_identifier": snap.block_number}
    for asset in snap.assets:
        a_token, debt_token = _reserve_tokens(c, asset.address)
        config = decode_reserve_configuration(pool.functions.getConfiguration(asset.address).call(**at)[0])
        assert (asset.ltv_bps, asset.liquidation_threshold_bps, asset.borrow_cap_tokens) == (
            config.ltv_bps, config.liquidation_threshold_bps, config.borrow_cap_tokens)
        assert config.decimals == asset.decimals
        assert asset.borrow_rate_ray == pool.functions.getReserveData(asset.address).call(**at)[4]
        assert asset.account_collateral == a_token.functions.balanceOf(d.vault_manager).call(**at)
        assert asset.account_debt == debt_token.functions.balanceOf(d.vault_manager).call(**at)
        assert asset.total_debt == debt_token.functions.totalSupply().call(**at)
    wbtc = snap.assets[snap.asset_index("WBTC")]
    assert wbtc.account_debt > 0 and wbtc.total_debt >= wbtc.account_debt + 10**8
    assert (wbtc.ltv_bps, wbtc.liquidation_threshold_bps, wbtc.borrow_cap_tokens) == (7_300, 7_800, 180)
    assert snap.lending == type(snap.lending)(*pool.functions.getUserAccountData(d.vault_manager).call(**at))


def test_borrow_room_is_the_cap_less_every_borrowers_debt(
    w3: Web3, deployment: Deployment, c: Any, chain: Any
) -> None:
    d, pool = deployment, c("Pool")
    user, wbtc = d.users[1], d.tokens["WBTC"]
    send(w3, c("WETH").functions.mint(user, 100 * 10**18), d.owner)
    send(w3, c("WETH").functions.approve(d.pool, MAX), user)
    send(w3, pool.functions.supply(d.tokens["WETH"], 100 * 10**18, user, 0), user)
    send(w3, pool.functions.borrow(wbtc, 3 * 10**8, 2, 0, user), user)
    snap = _reader(w3, d).read()
    i = snap.asset_index("WBTC")
    asset = snap.assets[i]
    room = _borrow_room(snap)
    assert room[i] == 180 * 10**8 - asset.total_debt  # the other borrower's 3 WBTC count
    assert abs(asset.total_debt - asset.account_debt - 3 * 10**8) <= 10  # both borrowers, ± index rounding
    # over the cap (another borrower took the rest): no room, negative
    send(w3, pool.functions.setBorrowCap(wbtc, 1), d.owner)
    assert _borrow_room(_reader(w3, d).read())[i] < 0


def test_total_debt_round_trips_through_json(w3: Web3, deployment: Deployment) -> None:
    snap = _reader(w3, deployment).read()
    assert all(a.total_debt > 0 for a in snap.assets if a.account_debt)
    data = json.loads(json.dumps(snap.to_json_dict()))
    assert snapshot_from_json_dict(data) == snap
    data["assets"][1]["total_debt"] = -1
    with pytest.raises(InputError, match=r"assets\[1\]\.total_debt"):
        snapshot_from_json_dict(data)
    del data["assets"][1]["total_debt"]  # an older snapshot file: no total, the decision counts own debt
    older: Snapshot = snapshot_from_json_dict(data)
    assert older.assets[1].total_debt == 0
    assert _borrow_room(older)[1] == older.assets[1].borrow_cap_tokens * 10**18 - older.assets[1].account_debt


def test_an_asset_that_is_no_reserve_of_the_pool_is_a_read_error(
    w3: Web3, deployment: Deployment, chain: Any
) -> None:
    d, owner = deployment, DEV_ACCOUNTS[0]
    dai = _deploy(w3, "TestToken", owner, "Dai", "DAI", 18)
    tokens, feeds = [d.tokens["USDC"], dai.address], [d.feeds["USDC"], d.feeds["USDC"]]
    vm = _deploy(w3, "VaultManager", owner, tokens, feeds, d.reward_router, d.pool, d.keeper, d.treasury, d.risk_off)
    with pytest.raises(ReadError, match=f"asset {dai.address} is not a reserve of the lending pool"):
        _reader(w3, d, vm.address).read()
