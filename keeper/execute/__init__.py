"""Execution: takes rebalance intents to exactly-once effect on chain (docs/execution.md).

Pure core: gas (fees, bumps, caps), classify (node answers), reconcile (nonce gaps), revert (error decoding).
Shell: pipeline (Pipeline.submit / reconcile / tick). Ports: chain (Chain, RpcChain, RpcPool), signer
(KeystoreSigner, RawKeySigner, RemoteSigner); fakes: FakeChain. Journal: keeper.store.
"""

from keeper.execute.chain import Chain, RpcChain, RpcPool, connect
from keeper.execute.gas import Fees, GasPolicy
from keeper.execute.metrics import ExecutionMetrics, prometheus_hook
from keeper.execute.pipeline import Pipeline, PipelineConfig
from keeper.execute.signer import KeystoreSigner, RawKeySigner, RemoteSigner, Signer

__all__ = [
    "Chain",
    "ExecutionMetrics",
    "Fees",
    "GasPolicy",
    "KeystoreSigner",
    "Pipeline",
    "PipelineConfig",
    "RawKeySigner",
    "RemoteSigner",
    "RpcChain",
    "RpcPool",
    "Signer",
    "connect",
    "prometheus_hook",
]
