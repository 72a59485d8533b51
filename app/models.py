"""The registry of every module's models, imported by Alembic so autogenerate sees them all."""

from __future__ import annotations

import importlib

# Add a module here when it gets a models.py (kept explicit: no import-time magic).
MODEL_MODULES: tuple[str, ...] = (
    "app.users.models",
    "app.auth.models",
    "app.accounts.models",
    "app.ledger.models",
    "app.payments.models",
    "app.adjustments.models",
    "app.deposits.models",
    "app.idempotency.models",
    "app.core.models",
)


def load_all_models() -> None:
    """Import every models module (the core's too) so they register on Base.metadata."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
