"""Accounts as the web app drives them (reference §4.6, §9; clients.md §1): register, log
in, the e-mailed code, passwords, profile, deletion, and the browser's CORS preflight.

Mail goes to an SMTP server in the test process (`mailbox`); each request runs in the
test's transaction, so the identity events it announced are checked in the outbox.
"""

import hashlib
import re
import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from session_service.models import PasswordReset, Session, Token, User
from shared.db import utcnow
from tests.session.conftest import (
    PASSWORD,
    app_client,
    make_session,
    outbox_rows,
    routing_keys,
    service_settings,
)

USER_KEYS = [
    "id", "username", "first_name", "last_name", "email", "institution", "reason", "website",
    "newsletter", "profession", "country", "profile_picture", "institutional_use",
]  # fmt: skip
WRONG_CODE = {"detail": "Looks like the verification code is incorrect. Please try again."}
EXPIRED_CODE = {"detail": "The verification code has expired. Ask for a new one."}
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
    b"5\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


def registration(**changes) -> dict:
    """What the web app's register page sends."""
    return {
        "username": "carol",
        "email": "carol@example.org",
        "password": "a long password 1",
        "first_name": "Carol",
        "last_name": "C",
        "institution": "Lab",
        "reason": "gait",
        "website": "",
        "newsletter": False,
        "country": "CH",
        "profession": "PI",
    } | changes


async def log_in(client, username: str = "alice", password: str = PASSWORD) -> dict:
    response = await client.post("/login/", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def token_of(login: dict) -> dict[str, str]:
    return {"Authorization": f"Token {login['token']}"}


async def verified(client, headers) -> bool:
    return (await client.get("/check-otp-verified/", headers=headers)).json()["otp_verified"]


def mails_to(mailbox, address: str) -> int:
    return sum(1 for message in mailbox.messages if message["To"] == address)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ── register ────────────────────────────────────────────────────────────────────────


async def test_register_answers_the_user_and_a_token_but_never_the_password(client, tx):
    response = await client.post("/register/", json=registration())

    assert response.status_code == 201
    body = response.json()
    assert list(body) == [*USER_KEYS, "token"]
    assert (body["username"], body["email"], body["country"]) == (
        "carol",
        "carol@example.org",
        "CH",
    )
    assert body["newsletter"] is False and body["profile_picture"] is None
    assert "password" not in body and "pbkdf2" not in response.text
    assert re.fullmatch(r"[0-9a-f]{40}", body["token"])
    groups = await client.get("/user-groups/", headers=token_of(body))
    assert groups.json() == {"groups": []}
    assert await routing_keys(tx) == ["user.updated", "user.token_issued"]


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"username": "ALICE"}, {"username": ["The username already exists."]}),
        ({"email": "Alice@Example.org"}, {"email": ["The email already exists."]}),
        ({"password": "short"}, {"password": ["Ensure this field has at least 8 characters."]}),
        ({"username": ""}, {"username": ["This field is required."]}),
        ({"email": "not an address"}, {"email": ["Enter a valid email address."]}),
    ],
)
async def test_register_refuses_taken_names_and_weak_input_with_field_errors(
    client, tx, alice, changes, errors
):
    response = await client.post("/register/", json=registration(**changes))

    assert (response.status_code, response.json()) == (400, errors)
    assert await tx.scalar(select(func.count()).select_from(User)) == 1
    assert await outbox_rows(tx) == []


# ── log in and the e-mailed code ────────────────────────────────────────────────────


async def test_login_mails_a_code_that_verifies_the_user(client, alice, mailbox):
    login = await log_in(client)

    assert login["otp_challenge_sent"] is True
    mail = mailbox.last_to(alice.email)
    assert mail["Subject"] == "Opencap - Verification Code"
    assert not await verified(client, token_of(login))
    response = await client.post(
        "/verify/", json={"otp_token": mailbox.code_for(alice.email)}, headers=token_of(login)
    )
    assert (response.status_code, response.json()) == (200, {})
    assert await verified(client, token_of(login))


async def test_a_wrong_code_is_refused_with_the_originals_message(client, alice, mailbox):
    login = await log_in(client)
    code = mailbox.code_for(alice.email)
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    response = await client.post("/verify/", json={"otp_token": wrong}, headers=token_of(login))

    assert (response.status_code, response.json()) == (403, WRONG_CODE)
    assert not await verified(client, token_of(login))


async def test_an_expired_code_is_refused(client, tx, alice, mailbox):
    login = await log_in(client)
    code = mailbox.code_for(alice.email)
    past = utcnow() - timedelta(seconds=1)
    await tx.execute(update(User).where(User.id == alice.id).values(otp_code_expires_at=past))

    response = await client.post("/verify/", json={"otp_token": code}, headers=token_of(login))

    assert (response.status_code, response.json()) == (403, EXPIRED_CODE)
    assert not await verified(client, token_of(login))


async def test_after_too_many_wrong_codes_even_the_right_one_is_refused(
    client, alice, mailbox, settings
):
    login = await log_in(client)
    code = mailbox.code_for(alice.email)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(settings.otp_max_failures):
        response = await client.post("/verify/", json={"otp_token": wrong}, headers=token_of(login))
        assert response.status_code == 403

    response = await client.post("/verify/", json={"otp_token": code}, headers=token_of(login))

    assert (response.status_code, response.json()) == (403, EXPIRED_CODE)
    assert not await verified(client, token_of(login))


async def test_a_remembered_device_logs_in_without_a_code_until_the_remembered_time(
    client, tx, alice, mailbox
):
    first = await log_in(client)
    await client.post(
        "/verify/",
        json={"otp_token": mailbox.code_for(alice.email), "remember_device": True},
        headers=token_of(first),
    )
    mails = mails_to(mailbox, alice.email)

    again = await log_in(client)

    assert again["otp_challenge_sent"] is False
    assert mails_to(mailbox, alice.email) == mails
    assert (await client.get("/sessions/new/", headers=token_of(again))).status_code == 200
    past = utcnow() - timedelta(seconds=1)
    await tx.execute(update(User).where(User.id == alice.id).values(otp_skip_till=past))
    late = await log_in(client)
    assert late["otp_challenge_sent"] is True
    assert mails_to(mailbox, alice.email) == mails + 1
    assert (await client.get("/sessions/new/", headers=token_of(late))).status_code == 403


async def test_without_remembering_the_device_every_login_asks_for_a_code(client, alice, mailbox):
    first = await log_in(client)
    await client.post(
        "/verify/", json={"otp_token": mailbox.code_for(alice.email)}, headers=token_of(first)
    )

    again = await log_in(client)

    assert again["otp_challenge_sent"] is True
    assert not await verified(client, token_of(first))


async def test_reset_otp_challenge_mails_a_new_code_and_the_old_one_stops_working(
    client, alice, mailbox
):
    login = await log_in(client)
    old = mailbox.code_for(alice.email)

    response = await client.post("/reset-otp-challenge/", headers=token_of(login))

    assert (response.status_code, response.json()) == (200, {"otp_challenge_sent": True})
    new = mailbox.code_for(alice.email)
    if new != old:  # one chance in a million that the two codes are the same
        stale = await client.post("/verify/", json={"otp_token": old}, headers=token_of(login))
        assert stale.status_code == 403
    fresh = await client.post("/verify/", json={"otp_token": new}, headers=token_of(login))
    assert fresh.status_code == 200
    assert await verified(client, token_of(login))


async def test_reset_otp_challenge_unverifies_a_verified_user(client, alice, as_alice):
    assert await verified(client, as_alice)

    await client.post("/reset-otp-challenge/", headers=as_alice)

    assert not await verified(client, as_alice)
    assert (await client.get("/sessions/new/", headers=as_alice)).status_code == 403


@pytest.fixture
async def auto_pass_client(s3_settings, smtp, tx):
    """The app of a single-user install: the e-mail code step is a formality."""
    settings = service_settings(s3_settings, smtp[1], otp_auto_pass=True)
    async with app_client(settings, tx) as client:
        yield client


async def test_with_otp_auto_pass_no_mail_is_sent_and_any_code_passes(
    auto_pass_client, alice, mailbox
):
    alice.otp_verified = False
    mails = mails_to(mailbox, alice.email)

    login = await log_in(auto_pass_client)
    challenge = await auto_pass_client.post("/reset-otp-challenge/", headers=token_of(login))
    verify = await auto_pass_client.post(
        "/verify/", json={"otp_token": "anything"}, headers=token_of(login)
    )

    assert login["otp_challenge_sent"] is False
    assert challenge.json() == {"otp_challenge_sent": False}
    assert verify.status_code == 200
    assert await verified(auto_pass_client, token_of(login))
    assert mails_to(mailbox, alice.email) == mails
    new = await auto_pass_client.get("/sessions/new/", headers=token_of(login))
    assert new.status_code == 200


@pytest.fixture
async def no_mail_client(s3_settings, tx):
    """The app with its mail server down."""
    settings = service_settings(s3_settings, closed_port())
    async with app_client(settings, tx) as client:
        yield client


async def test_a_mail_server_that_is_down_is_a_503_and_the_login_is_undone(
    no_mail_client, tx, alice, as_alice
):
    login = await no_mail_client.post("/login/", json={"username": "alice", "password": PASSWORD})
    challenge = await no_mail_client.post("/reset-otp-challenge/", headers=as_alice)

    for response in (login, challenge):
        assert response.status_code == 503
        assert list(response.json()) == ["detail"]
    assert await outbox_rows(tx) == []  # no token was issued
    assert await verified(no_mail_client, as_alice)


# ── password reset ──────────────────────────────────────────────────────────────────


def reset_link(mailbox, address: str) -> str:
    body = mailbox.last_to(address).get_payload(decode=True).decode()
    return re.search(r"https?://\S+/new-password/\S+", body).group(0)


async def ask_reset(client, email: str, host: str = "https://app.example.org"):
    response = await client.post("/reset-password/", json={"email": email, "host": host})
    assert (response.status_code, response.json()) == (200, {"message": "success"})


async def test_reset_password_answers_success_even_for_an_unknown_address(client, mailbox):
    mails = len(mailbox.messages)

    await ask_reset(client, "nobody@example.org")

    assert len(mailbox.messages) == mails


@pytest.mark.parametrize(
    ("host", "link_base"),
    [
        ("https://evil.example", "https://app.example.org"),
        ("", "https://app.example.org"),
        ("http://localhost:8080", "http://localhost:8080"),  # a CORS origin
        ("https://app.example.org/", "https://app.example.org"),
    ],
)
async def test_the_reset_link_points_at_the_web_app_unless_host_is_an_allowed_origin(
    client, alice, mailbox, host, link_base
):
    await ask_reset(client, "ALICE@example.org", host)

    mail = mailbox.last_to(alice.email)
    assert mail["Subject"] == "Opencap - Forgot Username or Password"
    link = reset_link(mailbox, alice.email)
    assert link.startswith(f"{link_base}/new-password/")


async def test_a_reset_token_sets_a_new_password_once_and_revokes_the_old_tokens(
    client, tx, alice, as_alice, mailbox
):
    old_hash = hashlib.sha256(as_alice["Authorization"].split()[1].encode()).hexdigest()
    await ask_reset(client, alice.email)
    token = reset_link(mailbox, alice.email).rsplit("/", 1)[1]
    new_password = "a brand new password"

    response = await client.post("/new-password/", json={"token": token, "password": new_password})

    assert (response.status_code, response.json()) == (200, {})
    assert (await client.get("/user-groups/", headers=as_alice)).json() == {
        "detail": "Invalid token."
    }
    [revoked] = [row for row in await outbox_rows(tx) if row.routing_key == "user.token_revoked"]
    assert revoked.body["data"] == {"key_hash": old_hash}
    old_login = await client.post("/login/", json={"username": "alice", "password": PASSWORD})
    assert old_login.status_code == 400
    await log_in(client, password=new_password)
    again = await client.post(
        "/new-password/", json={"token": token, "password": "yet another one"}
    )
    assert again.status_code == 404


async def test_an_expired_reset_token_is_not_found(client, tx, alice, mailbox, settings):
    await ask_reset(client, alice.email)
    token = reset_link(mailbox, alice.email).rsplit("/", 1)[1]
    long_ago = utcnow() - timedelta(hours=settings.password_reset_ttl_hours, seconds=1)
    await tx.execute(
        update(PasswordReset).where(PasswordReset.user_id == alice.id).values(created_at=long_ago)
    )

    response = await client.post("/new-password/", json={"token": token, "password": "x" * 20})

    assert response.status_code == 404
    assert list(response.json()) == ["detail"]


async def test_a_newer_reset_request_voids_the_older_link(client, alice, mailbox):
    await ask_reset(client, alice.email)
    first = reset_link(mailbox, alice.email).rsplit("/", 1)[1]
    await ask_reset(client, alice.email)

    response = await client.post("/new-password/", json={"token": first, "password": "x" * 20})

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"token": "not-a-token", "password": "x" * 20}, 404),
        ({"password": "x" * 20}, 400),
        ({"token": "not-a-token", "password": "short"}, 400),
    ],
)
async def test_new_password_without_a_valid_token_changes_nothing(client, tx, alice, body, status):
    hashed = alice.password_hash

    response = await client.post("/new-password/", json=body)

    assert response.status_code == status
    await tx.refresh(alice)
    assert alice.password_hash == hashed
    assert await outbox_rows(tx) == []


# ── profile ─────────────────────────────────────────────────────────────────────────


async def test_get_user_info_answers_the_callers_own_profile_only(client, alice, as_alice, bob):
    own = await client.post("/get_user_info/", json={"username": "alice"}, headers=as_alice)
    implicit = await client.post("/get_user_info/", json={}, headers=as_alice)
    other = await client.post("/get_user_info/", json={"username": "bob"}, headers=as_alice)

    assert own.status_code == 200
    assert own.json() == {
        "username": "alice",
        "email": "alice@example.org",
        "institution": None,
        "profession": None,
        "country": None,
        "reason": None,
        "website": None,
        "first_name": "",
        "last_name": "",
        "newsletter": True,
        "profile_picture": None,
    }
    assert implicit.json() == own.json()
    assert other.status_code == 404
    assert "bob@example.org" not in other.text


async def test_update_profile_changes_the_given_fields_only(client, as_alice):
    response = await client.post(
        "/update_profile/",
        json={"first_name": "Alice", "country": "NL", "newsletter": "false"},
        headers=as_alice,
    )

    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "id", "username", "first_name", "last_name", "email", "country", "institution",
        "profession", "reason", "website", "newsletter",
    ]  # fmt: skip
    assert (body["first_name"], body["country"], body["newsletter"]) == ("Alice", "NL", False)
    assert (body["username"], body["email"], body["last_name"]) == (
        "alice",
        "alice@example.org",
        "",
    )


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"email": "BOB@example.org"}, {"email": ["The email already exists."]}),
        ({"email": "nope"}, {"email": ["Enter a valid email address."]}),
        ({"username": "alicia"}, {"username": ["The username cannot be changed."]}),
    ],
)
async def test_update_profile_refuses_a_taken_email_or_a_new_username(
    client, tx, alice, as_alice, bob, fields, errors
):
    response = await client.post("/update_profile/", json=fields, headers=as_alice)

    assert (response.status_code, response.json()) == (400, errors)
    await tx.refresh(alice)
    assert (alice.username, alice.email) == ("alice", "alice@example.org")


async def test_a_profile_picture_is_stored_and_shown_in_the_profile(client, alice, as_alice):
    response = await client.post(
        "/update_profile_picture/",
        files={"profile_picture": ("me.png", PNG, "image/png")},
        headers=as_alice,
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["username"]) == (alice.id, "alice")
    assert body["profile_picture"].startswith("http") and ".png" in body["profile_picture"]
    info = await client.post("/get_user_info/", json={}, headers=as_alice)
    assert info.json()["profile_picture"] is not None


@pytest.mark.parametrize(
    "files",
    [
        {"profile_picture": ("me.html", b"<script>alert(1)</script>", "text/html")},
        {"profile_picture": ("me.svg", b"<svg/>", "image/svg+xml")},
        {"other": ("me.png", PNG, "image/png")},
    ],
)
async def test_a_profile_picture_must_be_an_image(client, alice, as_alice, files):
    response = await client.post("/update_profile_picture/", files=files, headers=as_alice)

    assert response.status_code == 400
    assert list(response.json()) == ["profile_picture"]
    assert alice.profile_picture_key is None


async def test_institutional_use_is_read_set_and_shown_at_login(client, as_alice):
    before = await client.get("/user-institutional-use/", headers=as_alice)
    set_ = await client.post(
        "/set-institutional-use/",
        json={"institutional_use": "research_at_academic"},
        headers=as_alice,
    )
    after = await client.get("/user-institutional-use/", headers=as_alice)
    again = await client.post(
        "/user-institutional-use/", json={"institutional_use": "patient_care"}, headers=as_alice
    )

    assert before.json() == {"institutional_use": ""}
    assert (set_.status_code, set_.json()) == (200, {})
    assert after.json() == {"institutional_use": "research_at_academic"}
    assert again.json() == {"institutional_use": "patient_care"}
    assert (await log_in(client))["institutional_use"] == "patient_care"


@pytest.mark.parametrize("value", ["commercial", None, ["patient_care"]])
async def test_institutional_use_must_be_one_of_the_choices(client, alice, as_alice, value):
    for path in ("/set-institutional-use/", "/user-institutional-use/"):
        response = await client.post(path, json={"institutional_use": value}, headers=as_alice)

        assert response.status_code == 400
        assert list(response.json()) == ["institutional_use"]
    assert alice.institutional_use == ""


async def test_user_groups_lists_the_callers_groups(client, as_alice, as_pipeline):
    assert (await client.get("/user-groups/", headers=as_alice)).json() == {"groups": []}
    assert (await client.get("/user-groups/", headers=as_pipeline)).json() == {
        "groups": ["backend"]
    }


# ── deleting the account ────────────────────────────────────────────────────────────


async def test_deleting_the_account_needs_the_username_as_confirmation(client, tx, alice, as_alice):
    response = await client.post("/delete-account/", json={"confirm": "Alice"}, headers=as_alice)

    assert response.status_code == 400
    assert await tx.get(User, alice.id) is not None
    assert await outbox_rows(tx) == []


async def test_a_deleted_account_loses_its_data_and_tokens_and_the_services_are_told(
    client, tx, alice, as_alice
):
    session = await make_session(tx, alice)
    key_hash = hashlib.sha256(as_alice["Authorization"].split()[1].encode()).hexdigest()

    response = await client.post("/delete-account/", json={"confirm": "alice"}, headers=as_alice)

    assert (response.status_code, response.json()) == (200, "The user was removed.")
    assert await tx.scalar(select(func.count()).select_from(User)) == 0
    assert await tx.scalar(select(func.count()).select_from(Token)) == 0
    assert await tx.scalar(select(Session.id).where(Session.id == session.id)) is None
    rows = {row.routing_key: row.body["data"] for row in await outbox_rows(tx)}
    assert rows == {
        "user.updated": {"user_id": alice.id, "groups": [], "is_active": False, "verified": True},
        "user.token_revoked": {"key_hash": key_hash},
        "session.deleted": {"session_id": str(session.id)},
    }
    assert (await client.get("/user-groups/", headers=as_alice)).status_code == 403
    gone = await client.post("/login/", json={"username": "alice", "password": PASSWORD})
    assert gone.status_code == 400


async def test_deleting_one_account_leaves_the_others(client, tx, as_alice, bob):
    await client.post("/delete-account/", json={"confirm": "alice"}, headers=as_alice)

    assert await tx.scalar(select(User.username)) == "bob"


# ── the browser's CORS preflight ────────────────────────────────────────────────────


async def test_the_web_apps_origin_may_call_with_a_token(client):
    response = await client.options(
        "/sessions/valid/",
        headers={
            "Origin": "http://localhost:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:8080"
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    methods = set(response.headers["access-control-allow-methods"].split(", "))
    assert {"GET", "POST", "PUT", "PATCH"} <= methods


async def test_another_origin_is_refused_by_the_preflight(client, as_alice):
    preflight = await client.options(
        "/sessions/valid/",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    simple = await client.get(
        "/user-groups/", headers={"Origin": "https://evil.example", **as_alice}
    )

    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers
