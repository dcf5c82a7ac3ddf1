"""server.db: tables, migrations and the async engine (SQLite by default, PostgreSQL by URL)."""
