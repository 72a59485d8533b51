"""Back-office adjustments: an admin credits or debits an account against the system account."""
