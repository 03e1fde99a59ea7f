"""Security primitives and records: credentials, API tokens, security events."""
