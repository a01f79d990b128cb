"""Chain access: compiled artifacts, the RPC client and the snapshot reader (the imperative shell)."""
