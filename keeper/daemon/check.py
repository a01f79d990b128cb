"""`keeper check-config`: after the file validates, check the world it describes.

Chain id of every endpoint, code at every configured address, the keeper role granted to the signer,
the signer's balance above the configured minimum, and the endpoints' heads in sync. Reports each
check on its own line; returns how many failed. Never signs or sends.
"""

from __future__ import annotations

from collections.abc import Callable

from web3 import Web3
from web3.providers import HTTPProvider

from keeper.chain.artifacts import abi
from keeper.config import KeeperSettings


def check_world(cfg: KeeperSettings, say: Callable[[str], None]) -> int:
    problems = 0

    def result(ok: bool, text: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        say(f"  {'ok  ' if ok else 'FAIL'} {text}")

    heads: list[int] = []
    w3: Web3 | None = None
    for i, url in enumerate(cfg.chain.rpc_urls):
        timeout = {"timeout": cfg.chain.request_timeout_seconds}
        client = Web3(HTTPProvider(url, request_kwargs=timeout, exception_retry_configuration=None))
        try:
            chain_id = int(client.eth.chain_id)
            heads.append(int(client.eth.block_number))
        except Exception as exc:
            result(False, f"chain.rpc_urls[{i}]: no answer ({exc.__class__.__name__})")
            continue
        expected = cfg.chain.chain_id
        result(chain_id == expected, f"chain.rpc_urls[{i}]: chain id {chain_id} (config {expected})")
        w3 = w3 or client
    if heads:
        lag = max(heads) - min(heads)
        result(lag <= cfg.chain.max_head_lag_blocks, f"endpoints in sync: head spread {lag} blocks")
    if w3 is None:
        result(False, "no endpoint answered: cannot check contracts")
        return problems
    for name, address in cfg.contracts.model_dump().items():
        code = w3.eth.get_code(Web3.to_checksum_address(address))
        result(len(code) > 0, f"contracts.{name}: {'code present' if code else 'no code'} at {address}")
    keeper = cfg.keeper_address()
    try:
        vm = w3.eth.contract(address=Web3.to_checksum_address(cfg.contracts.vault_manager), abi=abi("VaultManager"))
        role = str(vm.functions.keeper().call())
        result(role.lower() == keeper.lower(), f"keeper role: VaultManager.keeper() = {role}, signer = {keeper}")
    except Exception as exc:
        result(False, f"keeper role: cannot read VaultManager.keeper() ({exc.__class__.__name__})")
    balance = int(w3.eth.get_balance(Web3.to_checksum_address(keeper)))
    minimum = cfg.safety.min_signer_balance_wei
    result(balance >= minimum, f"signer balance {balance} wei (minimum {minimum})")
    return problems
