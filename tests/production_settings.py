"""Settings production accepts: strong secrets and a real provider (start-up refuses less)."""

from __future__ import annotations

from typing import Any

PRODUCTION: dict[str, Any] = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "Zq3v8L1pX0bN7wR2tY5uE9iO4aS6dF_hJkMn-GcVxB7e",
    "FIRST_ADMIN_PASSWORD": "a-long-unique-admin-passphrase",
    "PSP_PROVIDER": "http",
    "PSP_API_KEY": "psp-test-key-9f8e7d6c5b4a",
    "PSP_WEBHOOK_SECRET": "whsec-Kq8Vn2Lx7Rt4Pz9Yb3Mw6Jd1Hf5Gs0Ac",
}
