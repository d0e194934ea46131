from sqlalchemy import select

from session_service.models import Outbox


async def test_new_session_returns_a_list_and_emits_session_created(client, tx, as_alice):
    response = await client.get("/sessions/new/", headers=as_alice)

    assert response.status_code == 200
    [session] = response.json()
    assert session["trials"] == [] and session["qrcode"].startswith("http")
    types = (await tx.scalars(select(Outbox.routing_key))).all()
    assert types == ["session.created"]
