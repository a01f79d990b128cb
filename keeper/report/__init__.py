"""Accounting and reporting: what the operator reads (status tables, summaries)."""
