"""Leadership: exactly one process may sign with a key at a time (file lock, or a PostgreSQL lease)."""
