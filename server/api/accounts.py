"""server.api.accounts: /api/v1 handlers (to be written)."""
