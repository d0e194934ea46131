"""Alembic plumbing shared by the services' `migrations/env.py`, and database creation.

The URL comes from `-x url=…` on the alembic command line, from `config.attributes["url"]`
when run programmatically (`upgrade`), or from the service's `DATABASE_URL`.
"""

import asyncio
from pathlib import Path

import asyncpg
from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine


def run_env(metadata: MetaData, default_url: str) -> None:
    """The body of a service's migrations/env.py."""
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get(
        "url", default_url
    )
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata))


def _migrate(connection: Connection, metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str, metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_migrate, metadata)
    await engine.dispose()


def upgrade(service_dir: Path, url: str) -> None:
    """`alembic upgrade head` for the service in `service_dir` against `url`."""
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.attributes["url"] = url
    command.upgrade(config, "head")


async def create_database(url: str) -> bool:
    """Create the database `url` names if it does not exist; True if it was created."""
    target = make_url(url)
    admin = target.set(database="postgres", drivername="postgresql")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if not exists:
            await conn.execute(f'CREATE DATABASE "{target.database}"')
        return not exists
    finally:
        await conn.close()
