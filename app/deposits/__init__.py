"""Deposits: top-ups from a card through a payment provider, completed by a worker."""
