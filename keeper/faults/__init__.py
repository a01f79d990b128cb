"""Fault and abuse injection tools for the keeper's reliability suite (tests and drills only).

- `proxy`: a loopback JSON-RPC fault proxy between the keeper and a node (latency, timeouts, 429/5xx,
  dropped connections, malformed JSON, a lagging head, a wrong chain id, answers flipping between nodes).
- `process`: the daemon as a subprocess (config, start, SIGKILL/SIGSTOP/SIGCONT, metrics, /proc stats).
- `chainops`: chain events on anvil (reorgs, mempool eviction, base-fee spikes) and bad data (oracle
  prices, GMX spread, pool state).
- `audit`: the journal against the chain (duplicates, lost intents, nonce gaps, each intent effective once).
- `results` / `report`: result rows under `.keeper/reliability/` and RELIABILITY.md rendered from them.
- `manifest`: the expected scenarios (what the report must show, and which test writes each row).
- `secrets`: finds a signing key in text in any spelling; `SecretScan`, the session-wide scan of the suites.

Never imported by the keeper's own decision or execution path.
"""
