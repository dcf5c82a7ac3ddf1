"""server: the aiohttp application of Taphuan (HTTP pages, REST API, WebSocket signalling, auth)."""
