"""server.api.meetings: /api/v1 handlers (to be written)."""
