"""Callers resolved from a service's own copy of users and token hashes (kept by events)."""

import pytest

from shared.errors import NotAuthenticated
from shared.events import TokenIssued, TokenRevoked, UserUpdated
from shared.identity import Caller, caller, identity_handlers, token_hash, token_key
from tests.shared.support import ApiToken, ApiUser

HANDLERS = identity_handlers(ApiToken, ApiUser)


async def announce(db, *events) -> None:
    for event in events:
        async with db() as tx, tx.begin():
            await HANDLERS[type(event)](tx, event)


async def who(db, header: str | None) -> Caller | None:
    async with db() as tx:
        return await caller(tx, header, ApiToken, ApiUser)


async def test_a_token_announced_by_the_session_service_identifies_its_user(db):
    await announce(
        db,
        UserUpdated(user_id=2, groups=["backend"]),
        TokenIssued(key_hash=token_hash("k" * 40), user_id=2),
    )

    found = await who(db, f"Token {'k' * 40}")

    assert found == Caller(2, ("backend",))
    assert found.privileged


async def test_repeated_announcements_change_nothing_and_groups_follow_the_latest(db):
    issued = TokenIssued(key_hash=token_hash("k" * 40), user_id=3)
    await announce(
        db, UserUpdated(user_id=3), issued, issued, UserUpdated(user_id=3, groups=["admin"])
    )

    assert await who(db, f"Token {'k' * 40}") == Caller(3, ("admin",))


async def test_no_header_is_an_anonymous_caller(db):
    assert await who(db, None) is None


@pytest.mark.parametrize("header", ["Token", "Bearer abc", "Token a b", "Token "])
def test_a_malformed_header_is_refused(header):
    with pytest.raises(NotAuthenticated):
        token_key(header)


async def test_unknown_revoked_and_deactivated_tokens_are_refused(db):
    await announce(
        db,
        UserUpdated(user_id=4),
        TokenIssued(key_hash=token_hash("a" * 40), user_id=4),
        TokenIssued(key_hash=token_hash("b" * 40), user_id=4),
        TokenRevoked(key_hash=token_hash("a" * 40)),
    )
    with pytest.raises(NotAuthenticated):
        await who(db, f"Token {'z' * 40}")
    with pytest.raises(NotAuthenticated):
        await who(db, f"Token {'a' * 40}")
    assert await who(db, f"Token {'b' * 40}") == Caller(4, ())

    await announce(db, UserUpdated(user_id=4, is_active=False))
    with pytest.raises(NotAuthenticated):
        await who(db, f"Token {'b' * 40}")


async def test_a_user_between_password_and_e_mail_code_may_not_act_as_owner(db):
    await announce(
        db,
        UserUpdated(user_id=5, verified=False),
        TokenIssued(key_hash=token_hash("c" * 40), user_id=5),
    )

    found = await who(db, f"Token {'c' * 40}")

    assert found == Caller(5, (), verified=False)
    assert not found.may_act
    await announce(db, UserUpdated(user_id=5, verified=True))
    assert (await who(db, f"Token {'c' * 40}")).may_act
