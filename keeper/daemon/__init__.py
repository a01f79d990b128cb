"""The long-lived process: scheduler, health/metrics endpoint, safety switches (the imperative shell)."""
