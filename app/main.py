"""The ASGI application: create_app() wires routers, middleware, handlers and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import __version__
from app.accounts.dependencies import prefetch_account
from app.accounts.router import router as accounts_router
from app.adjustments.router import router as adjustments_router
from app.auth.dependencies import prefetch_principal
from app.auth.router import admin_router as users_admin_router
from app.auth.router import me_router as password_router
from app.auth.router import router as auth_router
from app.core.admission import AdmissionMiddleware, CancelOnDisconnectMiddleware
from app.core.body_limit import BodyLimitMiddleware
from app.core.cache import Cache
from app.core.config import Environment, Settings, get_settings
from app.core.db import create_engine, create_read_session_factory, create_session_factory
from app.core.docs import install_docs
from app.core.error_handlers import install_error_handlers
from app.core.errors import ServiceUnavailableError
from app.core.http_headers import (
    HeadAsGetMiddleware,
    ProblemCORSMiddleware,
    SecurityHeaders,
)
from app.core.http_metrics import HttpMetricsMiddleware, RedMetrics
from app.core.invalidation import Invalidator
from app.core.logging import configure_logging, get_logger
from app.core.metrics import BUSINESS, PoolCollector, Union
from app.core.openapi import install_openapi
from app.core.rate_limit import RateLimiter, RateLimitMiddleware
from app.core.redis import RedisBreaker, create_redis
from app.core.request_context import RequestContextMiddleware
from app.core.routing import include_flat
from app.core.security import PasswordHasher
from app.core.sentry import init_sentry
from app.deposits.router import router as deposits_router
from app.deposits.router import webhooks_router
from app.deposits.signature import SignatureVerifier
from app.health.router import router as health_router
from app.health.service import ReadinessProbe
from app.ledger.router import router as ledger_router
from app.payments.dependencies import prefetch_payment_list
from app.payments.router import router as payments_router
from app.users.router import router as users_router

API_PREFIX = "/api/v1"
METRICS_PATH = "/metrics"
# Request durations (seconds) per route: fine enough for p50/p95/p99 around the SLOs.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

logger = get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; `settings` defaults to the environment's."""
    settings = settings or get_settings()
    configure_logging(level=settings.LOG_LEVEL, fmt=settings.log_format)
    init_sentry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Pools are created here, not at import, so tests and workers control their lifetime.
        app.state.engine = create_engine(settings)
        app.state.session_factory = create_session_factory(app.state.engine)
        app.state.read_session_factory = create_read_session_factory(app.state.engine)
        pool_collector = PoolCollector(app.state.engine, settings)
        metrics_registry.register(pool_collector)
        app.state.redis = create_redis(settings)
        # One breaker for every Redis user: one failure spares all of them the timeouts.
        breaker = app.state.redis_breaker = RedisBreaker(
            open_seconds=settings.REDIS_BREAKER_SECONDS
        )
        app.state.rate_limiter = RateLimiter(app.state.redis, breaker=breaker)
        app.state.cache = Cache(
            app.state.redis, ttl_seconds=settings.CACHE_TTL_SECONDS, breaker=breaker
        )
        app.state.readiness = ReadinessProbe(
            engine=app.state.engine,
            redis=app.state.redis,
            within_seconds=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
            reuse_seconds=settings.HEALTH_CACHE_SECONDS,
        )
        # Re-applies the invalidations Redis missed, in this process too (ADR 0016).
        app.state.invalidator = Invalidator(
            app.state.cache,
            app.state.session_factory,
            app.state.engine,
            interval_seconds=settings.CACHE_REDRIVE_SECONDS,
        )
        app.state.password_hasher = PasswordHasher(settings)
        await app.state.password_hasher.warm_up()
        await app.state.invalidator.start()  # last: the `finally` below stops it
        logger.info("startup", environment=settings.ENVIRONMENT.value, release=settings.RELEASE)
        try:
            yield
        finally:
            await app.state.invalidator.stop()
            app.state.password_hasher.close()
            await app.state.redis.aclose()
            await app.state.engine.dispose()
            metrics_registry.unregister(pool_collector)
            logger.info("shutdown_complete")

    app = FastAPI(
        title="fastapi-ledger",
        version=__version__,
        summary="A wallet / payments ledger: double-entry, idempotent, observable.",
        debug=settings.DEBUG,
        lifespan=lifespan,
        # Served by install_docs from packaged bundles instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        # No trailing-slash redirects: Starlette builds them from the Host header, which a
        # client controls (`Host: evil.example` → `Location: http://evil.example/…`).
        redirect_slashes=False,
        # FastAPI's native OpenTelemetry, off: this service's telemetry is its own (RED
        # metrics, one access line per request, Sentry; ADR 0030). Left on with no provider
        # configured it exports nothing, yet looks the providers up on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app, oauth2_token_paths=frozenset({f"{API_PREFIX}/auth/login"}))
    install_openapi(app, currencies=settings.SUPPORTED_CURRENCIES)
    app.state.settings = settings  # what the dependencies hand on (core.dependencies.SettingsDep)
    app.state.webhook_verifier = SignatureVerifier(
        secret=settings.PSP_WEBHOOK_SECRET.get_secret_value(),
        tolerance_seconds=settings.PSP_WEBHOOK_TOLERANCE_SECONDS,
    )

    # add_middleware wraps what is already there, so the last added runs first. Order of a
    # request: request context (id and security headers on every answer, even its last-resort
    # 500; access log) -> RED metrics -> CORS (so 413 and 429 are readable by a browser too)
    # -> admission (bounded concurrency and queue) -> body limit -> cancel when the client
    # leaves -> trusted-proxy rewrite of the client address -> rate limit (before auth) -> HEAD
    # as GET -> routes.
    app.add_middleware(HeadAsGetMiddleware)
    # The rate-limit script also reads the caller's principal, a read account and a first page
    # of payments ahead (ADR 0022, 0035): core names no domain module, so the wiring hands it
    # auth's, accounts' and payments' idea of which cache entries those are.
    app.add_middleware(
        RateLimitMiddleware,
        settings=settings,
        prefix=API_PREFIX,
        prefetch=(prefetch_principal, prefetch_account, prefetch_payment_list),
    )
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.TRUSTED_PROXIES)
    app.add_middleware(CancelOnDisconnectMiddleware)
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.MAX_BODY_BYTES)
    app.add_middleware(
        AdmissionMiddleware,
        limit=settings.MAX_CONCURRENT_REQUESTS,
        queue_limit=settings.ADMISSION_QUEUE_LIMIT,
        wait_seconds=settings.ADMISSION_WAIT_SECONDS,
        # Endpoints that hash a password queue for Argon2: a gate of their own.
        separate=(f"{API_PREFIX}/auth/", f"{API_PREFIX}/users/me/password"),
        # Probes and the scrape are never queued: an overload is when they matter most.
        exempt_prefixes=("/health/", METRICS_PATH),
    )
    if settings.CORS_ORIGINS:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "Idempotent-Replayed",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    # RED metrics per route template, inside the request context (so its last-resort 500 is
    # outside, and counted as the 500 it saw raised), outside everything that
    # may refuse a request (503, 413, 429 are counted too). Not /metrics itself; paths no route
    # matches are one `none` handler, never a raw path.
    metrics_registry = CollectorRegistry(auto_describe=True)
    metrics_registry.register(Union(BUSINESS))
    ready = Gauge(
        "ledger_ready",
        "1 while /health/ready would answer 200 (database and Redis answer, not draining).",
        registry=metrics_registry,
    )
    app.add_middleware(
        HttpMetricsMiddleware,
        metrics=RedMetrics(metrics_registry, buckets=LATENCY_BUCKETS),
        excluded_paths=frozenset({METRICS_PATH}),
    )
    app.add_middleware(
        RequestContextMiddleware, security_headers=SecurityHeaders(api_prefix=API_PREFIX)
    )

    async def metrics(request: Request) -> Response:
        # The readiness probe's verdict (reused for HEALTH_CACHE_SECONDS), for its alert.
        try:
            await request.app.state.readiness.check()
            ready.set(1)
        except ServiceUnavailableError:
            ready.set(0)
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    app.add_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)

    # Probes first: they are the most frequent requests and the cheapest to match.
    include_flat(app, health_router)
    for router in (
        auth_router,
        users_router,
        password_router,
        accounts_router,
        ledger_router,
        payments_router,
        deposits_router,
        webhooks_router,
        adjustments_router,
        users_admin_router,
    ):
        include_flat(app, router, prefix=API_PREFIX)
    # Last: its static-files mount is then matched only after every API route has missed.
    outside_production = settings.ENVIRONMENT is not Environment.PRODUCTION
    install_docs(app, persist_authorization=outside_production, root_redirect=outside_production)
    return app


app = create_app()
