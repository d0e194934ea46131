"""Operator commands: create users, put them in groups, mint tokens.

    opencap-admin create-user alice --password '…' [--email …] [--group backend]
    opencap-admin add-group alice priority
    opencap-admin set-password alice --password '…'
    opencap-admin mint-token alice          # prints a new token (shown only once)
    opencap-admin sync-identity             # re-announce every user and token hash

This is how an operator gives the pipeline its backend token. The database is the
session service's (`DATABASE_URL`).
"""

import argparse
import asyncio
import sys

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.accounts import checked_credentials, checked_password
from session_service.auth import hash_password, mint_token, user_changed
from session_service.config import Settings
from session_service.models import Outbox, Token, User
from shared.db import create_engine, create_sessionmaker, utcnow
from shared.errors import Invalid
from shared.events import TokenIssued
from shared.outbox import record

GROUPS = ("admin", "backend", "priority")


async def _user(tx: AsyncSession, username: str) -> User:
    user = (await tx.scalars(select(User).where(User.username == username))).first()
    if user is None:
        raise SystemExit(f"no user named {username!r}")
    return user


def _refused(error: Invalid) -> SystemExit:
    return SystemExit(f"{error.field}: {error.detail}")


async def create_user(
    tx: AsyncSession, username: str, password: str, email: str = "", groups: list[str] = ()
) -> User:
    """An account checked as sign-up checks it; the e-mail address is optional (the
    pipeline's account has none)."""
    fields = {"username": username, "password": password} | ({"email": email} if email else {})
    try:
        username, password, email = await checked_credentials(tx, fields, email_required=False)
    except Invalid as error:
        raise _refused(error) from None
    user = User(
        username=username,
        email=email or "",
        password_hash=hash_password(password),
        first_name="",
        last_name="",
        institutional_use="",
        groups=sorted(set(groups)),
        is_active=True,
        date_joined=utcnow(),
    )
    tx.add(user)
    await tx.flush()
    user_changed(tx, user)
    return user


async def run(args: argparse.Namespace, settings: Settings) -> str:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as tx, tx.begin():
            if args.command == "sync-identity":
                return await sync_identity(tx)
            if args.command == "create-user":
                user = await create_user(tx, args.username, args.password, args.email, args.group)
                return f"created user {user.username} (id {user.id})"
            user = await _user(tx, args.username)
            if args.command == "add-group":
                user.groups = sorted({*user.groups, args.group})
                user_changed(tx, user)
                return f"{user.username} is in: {', '.join(user.groups)}"
            if args.command == "set-password":
                try:
                    password = checked_password({"password": args.password})
                except Invalid as error:
                    raise _refused(error) from None
                user.password_hash = hash_password(password)
                return f"changed the password of {user.username}"
            return mint_token(tx, user)
    finally:
        await engine.dispose()


async def sync_identity(tx: AsyncSession) -> str:
    """Publish every user and token hash again, for a service that joined late."""
    users = (await tx.scalars(select(User))).all()
    for user in users:
        user_changed(tx, user)
    tokens = (await tx.scalars(select(Token))).all()
    for token in tokens:
        event = TokenIssued(key_hash=token.key_hash, user_id=token.user_id)
        record(tx, Outbox, event, producer="session")
    return f"announced {len(users)} users and {len(tokens)} tokens"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opencap-admin", description=__doc__.split("\n\n")[0])
    commands = p.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a user")
    create.add_argument("username")
    create.add_argument("--password", required=True)
    create.add_argument("--email", default="")
    create.add_argument("--group", action="append", default=[], choices=GROUPS)
    group = commands.add_parser("add-group", help="put a user in a group")
    group.add_argument("username")
    group.add_argument("group", choices=GROUPS)
    password = commands.add_parser("set-password", help="set a user's password")
    password.add_argument("username")
    password.add_argument("--password", required=True)
    token = commands.add_parser("mint-token", help="print a new API token for a user")
    token.add_argument("username")
    commands.add_parser("sync-identity", help="re-announce all users and token hashes")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    print(asyncio.run(run(args, Settings())))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
