"""The operator dashboard (and, later, the member page): a login that swaps an API token for a
session cookie, static assets shipped in the package, and Server-Sent Events fed from the bus."""
