"""What the upload service knows of sessions: their owners (`session.created`) and the
session their phones move on to (`session.updated`), which links only sessions of one owner
and follows the newest event whatever order retries deliver them in."""

from datetime import timedelta
from uuid import uuid4

from shared.db import utcnow
from shared.events import SessionCreated, SessionUpdated
from tests.upload.conftest import OTHER_ID, OWNER_ID, owned
from upload_service.models import KnownSession
from upload_service.service import session_chain


async def test_chain_follows_sessions_of_the_same_owner(tx, deliver):
    first, second, third = uuid4(), uuid4(), uuid4()
    for session_id in (first, second, third):
        await owned(tx, session_id)
    await deliver(SessionUpdated(session_id=first, new_session_id=second))
    await deliver(SessionUpdated(session_id=second, new_session_id=third))

    assert await session_chain(tx, first) == [first, second, third]
    assert await session_chain(tx, second) == [second, third]


async def test_link_to_another_owners_session_is_ignored(tx, deliver):
    mine, theirs, after_theirs = uuid4(), uuid4(), uuid4()
    await owned(tx, mine, OWNER_ID)
    await owned(tx, theirs, OTHER_ID)
    await owned(tx, after_theirs, OWNER_ID)
    await deliver(SessionUpdated(session_id=mine, new_session_id=theirs))
    await deliver(SessionUpdated(session_id=theirs, new_session_id=after_theirs))

    assert await session_chain(tx, mine) == [mine]
    assert await session_chain(tx, theirs) == [theirs]


async def test_link_counts_only_once_both_owners_are_known(tx, deliver):
    first, second = uuid4(), uuid4()
    await deliver(SessionUpdated(session_id=first, new_session_id=second))
    await deliver(SessionCreated(session_id=first, user_id=OWNER_ID))

    assert await session_chain(tx, first) == [first]

    await deliver(SessionCreated(session_id=second, user_id=OWNER_ID))
    assert await session_chain(tx, first) == [first, second]


async def test_a_loop_of_links_ends_the_chain(tx, deliver):
    first, second = uuid4(), uuid4()
    await owned(tx, first)
    await owned(tx, second)
    await deliver(SessionUpdated(session_id=first, new_session_id=second))
    await deliver(SessionUpdated(session_id=second, new_session_id=first))

    assert await session_chain(tx, first) == [first, second]


async def test_an_older_update_delivered_late_does_not_undo_a_newer_one(tx, deliver):
    session_id, older_next, newer_next = uuid4(), uuid4(), uuid4()
    now = utcnow()
    newer = SessionUpdated(session_id=session_id, new_session_id=newer_next)
    older = SessionUpdated(session_id=session_id, new_session_id=older_next)

    await deliver(newer, occurred_at=now)
    await deliver(older, occurred_at=now - timedelta(seconds=2))

    known = await tx.get(KnownSession, session_id)
    assert (known.next_session_id, known.fields_at) == (newer_next, now)


async def test_a_newer_update_replaces_an_older_one_and_may_clear_the_link(tx, deliver):
    session_id, next_id = uuid4(), uuid4()
    now = utcnow()

    await deliver(SessionUpdated(session_id=session_id, new_session_id=next_id), now)
    await deliver(SessionUpdated(session_id=session_id), now + timedelta(seconds=1))

    assert (await tx.get(KnownSession, session_id)).next_session_id is None


async def test_the_same_update_delivered_twice_has_one_effect(tx, deliver):
    session_id, first_next, second_next = uuid4(), uuid4(), uuid4()
    now = utcnow()
    envelope = await deliver(SessionUpdated(session_id=session_id, new_session_id=first_next), now)
    await deliver(SessionUpdated(session_id=session_id, new_session_id=second_next), now)

    await deliver(envelope)  # redelivered: already handled

    assert (await tx.get(KnownSession, session_id)).next_session_id == second_next


async def test_owner_and_link_are_kept_whichever_event_comes_first(tx, deliver):
    session_id, next_id = uuid4(), uuid4()

    await deliver(SessionUpdated(session_id=session_id, new_session_id=next_id))
    await deliver(SessionCreated(session_id=session_id, user_id=7))

    known = await tx.get(KnownSession, session_id)
    assert (known.user_id, known.next_session_id) == (7, next_id)
