"""server.api.units: /api/v1 handlers (to be written)."""
