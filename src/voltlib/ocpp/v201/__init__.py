"""OCPP 2.0.1 (edition 3): typed messages, sans-I/O. Not wired to the gateway yet (issue 16)."""
