"""The operator's CLI (`opencap-admin`). Each command commits in its own transaction, so
these tests use usernames of their own and delete those users afterwards."""

import re
from uuid import uuid4

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from session_service.admin import parser, run
from session_service.auth import authenticate, user_for_token
from session_service.config import Settings
from session_service.models import Outbox, User
from shared.db import create_sessionmaker


@pytest.fixture
async def operator(engine: AsyncEngine):
    """`opencap-admin <argv>` against the test database; returns what it prints."""
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))

    async def admin(*argv: str) -> str:
        return await run(parser().parse_args(list(argv)), settings)

    yield admin
    async with engine.begin() as conn:
        await conn.execute(delete(User).where(User.username.like("op-%")))
        await conn.execute(delete(Outbox))  # what the commands announced


@pytest.fixture
def username() -> str:
    return f"op-{uuid4().hex[:12]}"


@pytest.fixture
async def db(engine: AsyncEngine):
    """Reads what the CLI committed, in fresh transactions."""
    return create_sessionmaker(engine)


async def announced(db) -> list[str]:
    async with db() as tx:
        return list((await tx.scalars(select(Outbox.routing_key).order_by(Outbox.id))).all())


async def test_users_groups_and_tokens_are_announced_to_the_other_services(operator, db, username):
    await operator("create-user", username, "--password", "pw 12345")
    await operator("add-group", username, "backend")
    await operator("mint-token", username)

    # (a new token announces its user too: a service that started keeping callers late
    # learns the user with it)
    assert await announced(db) == [
        "user.updated",
        "user.updated",
        "user.updated",
        "user.token_issued",
    ]
    async with db() as tx:
        body = (await tx.scalars(select(Outbox).order_by(Outbox.id.desc()))).first().body
    assert body["data"]["user_id"] > 0 and len(body["data"]["key_hash"]) == 64


async def test_sync_identity_announces_every_user_and_token_again(operator, db, username):
    await operator("create-user", username, "--password", "pw 12345")
    await operator("mint-token", username)
    before = len(await announced(db))

    printed = await operator("sync-identity")

    async with db() as tx:
        users = len((await tx.scalars(select(User))).all())
    assert printed.startswith(f"announced {users} users")
    assert (await announced(db))[before:].count("user.updated") == users


async def test_create_user_makes_an_account_that_can_log_in(operator, db, username):
    printed = await operator(
        "create-user",
        username,
        "--password",
        "pw 12345",
        "--email",
        "a@b.org",
        "--group",
        "backend",
    )

    async with db() as tx:
        user = await authenticate(tx, username, "pw 12345")
    assert user is not None
    assert printed == f"created user {username} (id {user.id})"
    assert (user.email, user.groups, user.is_active) == ("a@b.org", ["backend"], True)
    async with db() as tx:
        assert await authenticate(tx, username, "another password") is None


async def test_an_existing_username_is_refused(operator, username):
    await operator("create-user", username, "--password", "pw 12345")

    with pytest.raises(SystemExit, match="already exists"):
        await operator("create-user", username, "--password", "other password")


@pytest.mark.parametrize(
    ("argv", "refusal"),
    [
        (["--password", "short"], "password: Ensure this field has at least 8 characters."),
        (["--password", "long enough", "--email", "not-an-address"], "email: Enter a valid"),
    ],
)
async def test_create_user_checks_what_sign_up_checks(operator, db, username, argv, refusal):
    with pytest.raises(SystemExit, match=re.escape(refusal)):
        await operator("create-user", username, *argv)

    async with db() as tx:
        assert (await tx.scalars(select(User).where(User.username == username))).first() is None


@pytest.mark.parametrize("name", ["", "op-bad name", "op-a/../b"])
async def test_create_user_refuses_a_username_nobody_could_log_in_with(operator, name):
    with pytest.raises(SystemExit, match="username: "):
        await operator("create-user", name, "--password", "long enough")


async def test_an_address_another_account_has_is_refused(operator, username):
    await operator("create-user", username, "--password", "pw 12345", "--email", "op@b.org")

    with pytest.raises(SystemExit, match="email: The email already exists."):
        await operator(
            "create-user", f"{username}x", "--password", "pw 12345", "--email", "OP@b.org"
        )


async def test_set_password_checks_its_length(operator, db, username):
    await operator("create-user", username, "--password", "old password")

    with pytest.raises(SystemExit, match="at least 8 characters"):
        await operator("set-password", username, "--password", "short")

    async with db() as tx:
        assert await authenticate(tx, username, "old password") is not None


async def test_add_group_puts_the_user_in_it_once(operator, db, username):
    await operator("create-user", username, "--password", "pw 12345", "--group", "priority")

    await operator("add-group", username, "backend")
    printed = await operator("add-group", username, "backend")

    assert printed == f"{username} is in: backend, priority"
    async with db() as tx:
        user = (await tx.scalars(select(User).where(User.username == username))).one()
    assert user.groups == ["backend", "priority"]


def test_only_known_groups_can_be_given():
    with pytest.raises(SystemExit):
        parser().parse_args(["add-group", "someone", "superuser"])


async def test_minted_token_authenticates_its_user(operator, db, username):
    await operator("create-user", username, "--password", "pw 12345")

    key = await operator("mint-token", username)
    other = await operator("mint-token", username)

    assert re.fullmatch(r"[0-9a-f]{40}", key) and other != key
    async with db() as tx:
        assert (await user_for_token(tx, key)).username == username
        assert (await user_for_token(tx, other)).username == username
        assert await user_for_token(tx, "0" * 40) is None


async def test_set_password_replaces_the_old_one(operator, db, username):
    await operator("create-user", username, "--password", "old password")

    printed = await operator("set-password", username, "--password", "new password")

    assert printed == f"changed the password of {username}"
    async with db() as tx:
        assert await authenticate(tx, username, "new password") is not None
        assert await authenticate(tx, username, "old password") is None


@pytest.mark.parametrize("argv", [["add-group", "op-nobody", "admin"], ["mint-token", "op-nobody"]])
async def test_commands_on_an_unknown_user_say_so(operator, argv):
    with pytest.raises(SystemExit, match="no user named 'op-nobody'"):
        await operator(*argv)
