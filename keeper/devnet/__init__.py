"""The embedded devnet: the anvil node, the reference-system deployment and the market simulator."""
