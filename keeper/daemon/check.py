"""`keeper check-config`: after the file validates, check the world it describes.

Chain id of every endpoint, the endpoints' heads in sync, code at every configured address, the
signer's address (a keystore's from its JSON, a remote signer's from `signer.address`, which that signer
must list in `eth_accounts`; a keystore's password file readable), the keeper role granted to that address
and its balance above the configured minimum. Reports each check on its own line (`ok` or `FAIL` and
what is wrong); returns how many failed. Never decrypts a keystore, signs or sends.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from web3 import Web3
from web3.providers import HTTPProvider

from keeper.chain.artifacts import abi
from keeper.config import KeeperSettings
from keeper.errors import ConfigError


def _client(url: str, timeout: float) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))


def check_world(cfg: KeeperSettings, say: Callable[[str], None]) -> int:
    problems = 0

    def result(ok: bool, text: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        say(f"  {'ok  ' if ok else 'FAIL'} {text}")

    heads: list[tuple[int, int]] = []  # (endpoint index, head)
    w3: Web3 | None = None
    timeout = cfg.chain.request_timeout_seconds
    for i, url in enumerate(cfg.chain.rpc_urls):
        client = _client(url, timeout)
        try:
            chain_id = int(client.eth.chain_id)
            head = int(client.eth.block_number)
        except Exception as exc:
            result(False, f"chain.rpc_urls[{i}]: no answer ({exc.__class__.__name__})")
            continue
        expected = cfg.chain.chain_id
        result(chain_id == expected, f"chain.rpc_urls[{i}]: chain id {chain_id} (config {expected})")
        heads.append((i, head))
        w3 = w3 or client
    if len(heads) > 1:
        spread = max(h for _, h in heads) - min(h for _, h in heads)
        limit = cfg.chain.max_head_lag_blocks
        at = ", ".join(f"rpc_urls[{i}] at {h}" for i, h in heads)
        if spread <= limit:
            result(True, f"endpoints in sync: head spread {spread} blocks (chain.max_head_lag_blocks {limit})")
        else:
            result(False, f"endpoints out of sync: head spread {spread} blocks > chain.max_head_lag_blocks "
                          f"{limit} ({at})")
    if w3 is None:
        result(False, "no endpoint answered: cannot check contracts, keeper role or balance")
        return problems
    addresses = {k: v for k, v in cfg.contracts.model_dump().items() if isinstance(v, str)}  # not deployed_at_block
    for name, address in addresses.items():
        code = w3.eth.get_code(Web3.to_checksum_address(address))
        result(len(code) > 0, f"contracts.{name}: {'code present' if code else 'no code'} at {address}")
    keeper = _signer_address(cfg, result)
    if keeper is None:
        return problems
    try:
        vm = w3.eth.contract(address=Web3.to_checksum_address(cfg.contracts.vault_manager), abi=abi("VaultManager"))
        role = str(vm.functions.keeper().call())
    except Exception as exc:
        result(False, f"keeper role: cannot read VaultManager.keeper() ({exc.__class__.__name__})")
    else:
        if role.lower() == keeper.lower():
            result(True, f"keeper role: granted to the signer {keeper}")
        else:
            result(False, f"keeper role not granted to the signer {keeper}: VaultManager.keeper() = {role}")
    balance = int(w3.eth.get_balance(Web3.to_checksum_address(keeper)))
    minimum = cfg.safety.min_signer_balance_wei
    if balance >= minimum:
        result(True, f"signer balance {balance} wei (safety.min_signer_balance_wei {minimum})")
    else:
        result(False, f"signer balance {balance} wei below safety.min_signer_balance_wei {minimum}: fund {keeper}")
    return problems


def _signer_address(cfg: KeeperSettings, result: Callable[[bool, str], None]) -> str | None:
    """The address the keeper will sign with, or None (after a FAIL line) when there is none to check."""
    s = cfg.signer
    if s.kind == "none":
        result(False, 'signer: kind "none" cannot sign (set signer.kind to keystore, remote or raw)')
        return None
    try:
        address = cfg.keeper_address()
    except ConfigError as exc:
        result(False, f"signer: {exc}")
        return None
    if s.kind == "remote" and s.remote_url is not None:
        try:
            accounts = [str(a).lower() for a in _client(s.remote_url, cfg.chain.request_timeout_seconds).eth.accounts]
        except Exception as exc:
            result(False, f"signer.remote_url: no answer to eth_accounts ({exc.__class__.__name__})")
            return address
        held = address.lower() in accounts
        result(held, f"signer: remote signer {'holds' if held else 'does not list'} signer.address {address}")
        return address
    source = f"from keystore {s.keystore_file}" if s.kind == "keystore" else f"{s.kind} signer"
    result(True, f"signer: {address} ({source})")
    if s.kind == "keystore" and s.password_file is not None:
        readable = s.password_file.is_file() and os.access(s.password_file, os.R_OK)
        result(readable, f"signer.password_file {s.password_file}: {'readable' if readable else 'cannot be read'}")
    return address
