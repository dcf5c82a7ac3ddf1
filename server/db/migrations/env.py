"""Alembic environment: runs on the connection handed over by server.db.engine.migrate."""

from alembic import context
from sqlalchemy import create_engine

from server.db.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")

if connection is None:
    # Used only by `alembic revision --autogenerate` during development.
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///data/dev.sqlite3"
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
