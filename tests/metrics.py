"""Reading the business counters in tests: a counter's value now, so a test asserts its change."""

from __future__ import annotations

from app.core.metrics import BUSINESS


def sample(name: str, **labels: str) -> float:
    """The current value of one series of the business registry (0 if never counted)."""
    return BUSINESS.get_sample_value(name, labels) or 0.0


CacheReads = dict[tuple[str, str], float]


def cache_reads() -> CacheReads:
    """Every cache read counted so far (`ledger_cache_requests_total`), by (cache, result)."""
    return {
        (s.labels["cache"], s.labels["result"]): s.value
        for metric in BUSINESS.collect()
        if metric.name == "ledger_cache_requests"
        for s in metric.samples
        if s.name == "ledger_cache_requests_total"
    }


def cache_reads_since(before: CacheReads) -> CacheReads:
    """The cache reads counted since `before`, by (cache, result); a read never made is absent."""
    now = cache_reads()
    return {key: now[key] - before.get(key, 0.0) for key in now if now[key] != before.get(key)}
