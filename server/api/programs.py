"""server.api.programs: /api/v1 handlers (to be written)."""
