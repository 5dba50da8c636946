"""Alembic environment: always run with a connection handed in by ``thrifty.registry.db``."""

from __future__ import annotations

from alembic import context

from thrifty.registry.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    from thrifty.registry.db import make_engine
    from thrifty.settings import get_settings

    engine = make_engine(get_settings().resolved_database_url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
