"""Liveness and readiness probes (outside /api/v1, used by orchestrators and the proxy)."""
