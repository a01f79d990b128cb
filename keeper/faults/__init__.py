"""Fault and abuse injection tools for the keeper's reliability suite (tests and drills only).

- `proxy`: a loopback JSON-RPC fault proxy between the keeper and a node (latency, timeouts, 429/5xx,
  dropped connections, malformed JSON, a lagging head, a wrong chain id, answers flipping between nodes).
- `process`: the daemon as a subprocess (config, start, SIGKILL/SIGSTOP/SIGCONT, metrics, /proc stats).
- `chainops`: chain events on anvil (reorgs, mempool eviction, base-fee spikes) and bad data (oracle
  prices, GMX spread, pool state).
- `audit`: the journal against the chain (duplicates, lost intents, nonce gaps).
- `results` / `report`: result rows under `.keeper/reliability/` and RELIABILITY.md rendered from them.
- `secrets`: scans text for a signing key in any spelling.

Never imported by the keeper's own decision or execution path.
"""
