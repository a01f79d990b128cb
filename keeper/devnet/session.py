"""A devnet session: anvil started, the reference system deployed, a config file written.

Owns the lifetime of what it starts: leaving the `with` block stops anvil by its pid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from keeper.config import render_toml
from keeper.devnet.anvil import DEV_KEYS, Anvil
from keeper.devnet.deploy import Deployment, deploy_reference_system
from keeper.devnet.lyf import LyfDeployment, deploy_lyf


@dataclass
class DevnetSession:
    anvil: Anvil
    deployment: Deployment
    config_path: Path
    lyf: LyfDeployment | None = None

    def vault_names(self) -> dict[int, str]:
        return {v.id: v.name for v in self.deployment.vaults}

    def describe(self) -> str:
        d = self.deployment
        rows = [
            ("rpc", self.anvil.url),
            ("chain id", str(d.chain_id)),
            *((f"token {s}", a) for s, a in d.tokens.items()),
            *((f"feed {s}/USD", a) for s, a in d.feeds.items()),
            ("GMX Vault", d.gmx_vault),
            ("GlpManager", d.glp_manager),
            ("GLP", d.glp),
            ("RewardRouterV2", d.reward_router),
            ("lending Pool", d.pool),
            ("Multicall3", d.multicall),
            ("VaultManager", d.vault_manager),
            ("keeper account", d.keeper),
        ]
        width = max(len(k) for k, _ in rows)
        vaults = ", ".join(f"{v.id}:{v.name} ({v.denomination})" for v in d.vaults)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows) + f"\n{'vaults'.ljust(width)}  {vaults}"


def devnet_config(anvil: Anvil, d: Deployment) -> dict[str, object]:
    """The config the other subcommands read. The key is anvil's well-known dev key #1 (devnet only)."""
    return {
        "hedged_assets": ["WETH", "WBTC"],
        "state_dir": ".keeper",
        "chain": {"chain_id": d.chain_id, "rpc_urls": [anvil.url]},
        "contracts": {
            "vault_manager": d.vault_manager,
            "multicall": d.multicall,
            "gmx_vault": d.gmx_vault,
            "glp_manager": d.glp_manager,
            "reward_router": d.reward_router,
            "pool": d.pool,
            "glp": d.glp,
        },
        "signer": {"kind": "raw", "address": d.keeper, "key": DEV_KEYS[1]},
    }


def lyf_position_config(lyf: LyfDeployment, name: str = "avax-usdc", **rules: int) -> dict[str, object]:
    """A `[[lyf.positions]]` entry for the devnet's LYF deployment (planner defaults unless overridden)."""
    return {
        "name": name, "position": lyf.position, "pair": lyf.pair, "volatile": lyf.volatile, "stable": lyf.stable,
        "feed": lyf.feed, **rules,
    }


def deployment_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.stem + ".deployment.json")


@contextmanager
def start_devnet(
    *,
    port: int | None,
    block_time: float | None,
    config_out: Path,
    seed_positions: bool = True,
    host: str = "127.0.0.1",
    with_lyf: bool = False,
) -> Iterator[DevnetSession]:
    anvil = Anvil.start(port=port, host=host)
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
        deployment = deploy_reference_system(w3, seed_positions=seed_positions)
        lyf = deploy_lyf(w3) if with_lyf else None
        if block_time is not None:
            # Deploy on automine (fast), then switch to interval mining as asked.
            w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
            w3.provider.make_request("evm_setIntervalMining", [block_time])  # type: ignore[arg-type]
        config_out.parent.mkdir(parents=True, exist_ok=True)
        config = devnet_config(anvil, deployment)
        if lyf is not None:
            config["lyf"] = {"positions": [lyf_position_config(lyf)]}
        config_out.write_text(render_toml(config))
        # the simulator and the demo need every address, not only the keeper's
        document = deployment.to_dict() | ({"lyf": lyf.to_dict()} if lyf is not None else {})
        deployment_path(config_out).write_text(json.dumps(document, indent=1) + "\n")
        yield DevnetSession(anvil=anvil, deployment=deployment, config_path=config_out, lyf=lyf)
    finally:
        anvil.stop()
