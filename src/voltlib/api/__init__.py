"""The HTTP JSON API (OpenAPI 3.1 at /api/v1/openapi.json)."""
