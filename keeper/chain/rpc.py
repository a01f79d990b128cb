"""Connecting to an RPC endpoint: a Web3 client with a timeout whose chain id has been verified.

Owns endpoint set-up only (health tracking and failover come with the daemon).
"""

from __future__ import annotations

from web3 import Web3
from web3.providers import HTTPProvider

from keeper.errors import ConfigError, ReadError


def connect(url: str, expected_chain_id: int | None = None, *, timeout: float = 10.0) -> Web3:
    """A Web3 on `url`; ReadError when it does not answer, ConfigError when its chain id is wrong."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:  # transport errors come in many types
        raise ReadError(f"RPC endpoint {url} did not answer eth_chainId ({exc.__class__.__name__})") from None
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise ConfigError(f"chain.chain_id: endpoint {url} is on chain {chain_id}, config says {expected_chain_id}")
    return w3
