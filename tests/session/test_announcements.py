"""What the other services are told (deletions, the e-mail code step, a session's links and
subject), what strangers may not see, and bad input that once reached the database."""

from datetime import timedelta

import pytest

from session_service.sessions import remove_unused_sessions
from shared.db import utcnow
from tests.session.conftest import (
    PASSWORD,
    make_session,
    make_subject,
    make_trial,
    make_video,
    outbox_rows,
    routing_keys,
)


async def announced(tx, routing_key: str) -> list[dict]:
    return [row.body["data"] for row in await outbox_rows(tx) if row.routing_key == routing_key]


class TestDeletions:
    async def test_deleting_a_session_tells_the_other_services(self, client, tx, alice, as_alice):
        session = await make_session(tx, alice)

        response = await client.delete(f"/sessions/{session.id}/", headers=as_alice)

        assert response.status_code == 204
        assert await announced(tx, "session.deleted") == [{"session_id": str(session.id)}]

    async def test_removing_recordings_announces_each_trial_but_the_calibration(
        self, client, tx, alice, as_alice
    ):
        session = await make_session(tx, alice)
        await make_trial(tx, session, "calibration", "done")
        walk = await make_trial(tx, session, "walk", "done")

        await client.post(f"/sessions/{session.id}/permanent_remove/", headers=as_alice)

        assert await announced(tx, "trial.deleted") == [
            {"trial_id": str(walk.id), "session_id": str(session.id)}
        ]

    @pytest.mark.parametrize("how", ["delete", "permanent_remove"])
    async def test_deleting_a_trial_tells_the_other_services(
        self, client, tx, alice, as_alice, how
    ):
        trial = await make_trial(tx, await make_session(tx, alice), "walk", "done")

        if how == "delete":
            await client.delete(f"/trials/{trial.id}/", headers=as_alice)
        else:
            await client.post(f"/trials/{trial.id}/permanent_remove/", headers=as_alice)

        assert await announced(tx, "trial.deleted") == [
            {"trial_id": str(trial.id), "session_id": str(trial.session_id)}
        ]

    async def test_the_unused_session_cleanup_announces_what_it_removes(self, tx, alice):
        old = await make_session(tx, alice, created_at=utcnow() - timedelta(days=30))

        assert await remove_unused_sessions(tx, timedelta(days=7)) == 1
        assert await announced(tx, "session.deleted") == [{"session_id": str(old.id)}]


class TestCodeStep:
    async def test_login_and_the_code_tell_the_other_services_when_the_user_may_act(
        self, client, tx, alice, mailbox
    ):
        login = await client.post("/login/", json={"username": "alice", "password": PASSWORD})
        headers = {"Authorization": f"Token {login.json()['token']}"}
        code = mailbox.code_for(alice.email)
        await client.post("/verify/", json={"otp_token": code}, headers=headers)

        assert [e["verified"] for e in await announced(tx, "user.updated")] == [False, True]


class TestLinksAndSubjects:
    async def test_a_session_cannot_link_to_another_users_session(
        self, client, tx, alice, bob, as_bob
    ):
        theirs = await make_session(tx, alice)
        mine, other_of_mine = await make_session(tx, bob), await make_session(tx, bob)

        refused = await client.patch(
            f"/sessions/{mine.id}/",
            json={"meta": {"sessionWithCalibration": {"id": str(theirs.id)}}},
            headers=as_bob,
        )
        allowed = await client.patch(
            f"/sessions/{mine.id}/",
            json={"meta": {"sessionWithCalibration": {"id": str(other_of_mine.id)}}},
            headers=as_bob,
        )

        assert (refused.status_code, list(refused.json())) == (400, ["meta"])
        assert allowed.status_code == 200
        [update] = await announced(tx, "session.updated")
        assert update["calibration_session_id"] == str(other_of_mine.id)

    @pytest.mark.parametrize(
        "meta", [{"settings": "x"}, {"sessionWithCalibration": "x"}, {"startNewSession": ["x"]}]
    )
    async def test_oddly_shaped_meta_is_refused_or_kept_never_a_500(
        self, client, tx, alice, as_alice, meta
    ):
        session = await make_session(tx, alice)

        response = await client.patch(
            f"/sessions/{session.id}/", json={"meta": meta}, headers=as_alice
        )

        assert response.status_code in (200, 400)

    async def test_choosing_a_subject_is_announced(self, client, tx, alice, as_alice):
        session, subject = await make_session(tx, alice), await make_subject(tx, alice)

        await client.get(
            f"/sessions/{session.id}/set_subject/?subject_id={subject.id}", headers=as_alice
        )

        [update] = await announced(tx, "session.updated")
        assert update["subject_id"] == subject.id


class TestStrangers:
    async def test_readers_of_a_public_session_do_not_see_slots_awaiting_upload(
        self, client, tx, alice, as_alice, as_bob
    ):
        trial = await make_trial(tx, await make_session(tx, alice, public=True), "walk", "stopped")
        waiting = await make_video(tx, trial)
        done = await make_video(tx, trial, key="abc.mov")

        stranger = (await client.get(f"/trials/{trial.id}/", headers=as_bob)).json()
        owner = (await client.get(f"/trials/{trial.id}/", headers=as_alice)).json()
        anonymous = (await client.get(f"/sessions/{trial.session_id}/")).json()

        assert [v["id"] for v in stranger["videos"]] == [str(done.id)]
        assert {v["id"] for v in owner["videos"]} == {str(waiting.id), str(done.id)}
        assert [v["id"] for v in anonymous["trials"][0]["videos"]] == [str(done.id)]


class TestBadInput:
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/sessions/valid/", {"quantity": 1e20}),
            ("POST", "/sessions/valid/", {"quantity": 10**30}),
            ("GET", "/subjects/?quantity=99999999999999999999", None),
            (
                "POST",
                "/sessions/get_session_statuses/",
                {"status": "x", "date_range": ["2020-01-01", "9999-12-31"]},
            ),
        ],
    )
    async def test_numbers_out_of_range_are_a_400(self, client, as_alice, method, path, body):
        response = await client.request(method, path, json=body, headers=as_alice)

        assert response.status_code == 400

    @pytest.mark.parametrize("hours", ["nan", "inf", "-1", "1e300"])
    async def test_hours_that_are_not_a_number_of_hours_are_a_400(self, client, as_pipeline, hours):
        response = await client.get(
            f"/trials/get_trials_with_status/?status=stopped&hoursSinceUpdate={hours}",
            headers=as_pipeline,
        )

        assert response.status_code == 400

    @pytest.mark.parametrize(
        ("path", "body"),
        [("/trials/{id}/rename/", {"trialNewName": ["x"]}), ("/trials/{id}/", {"name": 5})],
    )
    async def test_a_trial_name_that_is_not_text_is_a_400(
        self, client, tx, alice, as_alice, path, body
    ):
        trial = await make_trial(tx, await make_session(tx, alice), "walk", "done")
        method = "POST" if "rename" in path else "PATCH"

        response = await client.request(
            method, path.format(id=trial.id), json=body, headers=as_alice
        )

        assert response.status_code == 400

    async def test_a_lone_surrogate_in_meta_is_a_400(self, client, tx, alice, as_alice):
        trial = await make_trial(tx, await make_session(tx, alice), "walk", "done")

        response = await client.patch(
            f"/trials/{trial.id}/",
            content=b'{"meta": {"error_msg": "\\ud800"}}',
            headers={**as_alice, "Content-Type": "application/json"},
        )

        assert response.status_code == 400
        assert await routing_keys(tx) == []
