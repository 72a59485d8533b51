"""Developer tooling run by `make check` (never imported by the application)."""
