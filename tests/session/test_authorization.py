"""Who may call what: every route of the session service × every kind of caller.

Callers: the owner of the objects, another verified user, an anonymous caller, the
pipeline's `backend` user, an `admin`, the owner before the e-mail code step
(`unverified`) and a caller with a token nobody issued (`bad_token`). Session and trial
routes are tried on a private and on a public session of the owner, subject routes on
the owner's subject.

The original's rules (reference §3, §9; known-failures 23): credentials missing or wrong
are a 403 with `{"detail": …}`; an anonymous reader of a private session gets a 401 (the
web app then shows its login page); another user's session, trial or subject is a 404;
a public session can be read by anyone but changed only by its owner; `backend` and
`admin` read and change everything; the owner may read before the e-mail code step but
not write or list. Every refused call leaves the database exactly as it was, outbox
included.

The table is checked against the app's routes, so a new route without a row fails.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from session_service.accounts import start_otp_challenge
from session_service.models import Base, SubjectTag, TrialTag, User
from shared.db import utcnow
from tests.conftest import rolled_back
from tests.session.conftest import (
    app_client,
    auth_headers,
    make_session,
    make_subject,
    make_trial,
    make_user,
    make_video,
    service_settings,
)

ACTORS = ("owner", "other", "anonymous", "backend", "admin", "unverified", "bad_token")
NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}
BAD_TOKEN = {"detail": "Invalid token."}
NOT_VERIFIED = {"detail": "You do not have permission to perform this action."}
LOG_IN = {"detail": "Sorry, you have to log in to access to this session."}
# Routes of the shared app frame left out: /readyz needs the database engine the app's
# lifespan opens (the in-process test client runs no lifespan); the OpenAPI schema is no
# route of the original API.
NOT_IN_MATRIX = {
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("HEAD", "/metrics"),
}
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
    b"5\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)

Cells = dict[str, int]


# ── who gets what: the rules, by kind of route ──────────────────────────────────────


def cells(default: int, **exceptions: int) -> Cells:
    return {actor: exceptions.get(actor, default) for actor in ACTORS}


def anyone(ok: int = 200) -> dict[str, Cells]:
    """Needs no credentials and reads none (a wrong token is not even looked at)."""
    return {"-": cells(ok)}


def signed_in(ok: int = 200) -> dict[str, Cells]:
    """Any user with a token, before or after the e-mail code step."""
    return {"-": cells(ok, anonymous=403, bad_token=403)}


def verified(ok: int = 200) -> dict[str, Cells]:
    """Any user past the e-mail code step: lists, creations, own-account changes."""
    return {"-": cells(ok, anonymous=403, bad_token=403, unverified=403)}


def own_account(ok: int = 200) -> dict[str, Cells]:
    """The caller's own account only: asking about the owner's is a 404 for the others."""
    return {"-": cells(404, owner=ok, unverified=ok, anonymous=403, bad_token=403)}


def readable(ok: int = 200, anonymous_private: int = 401) -> dict[str, Cells]:
    """Read by the verified owner, backend, admin; anyone if the session is public. The
    owner not past the e-mail code step reads as the anonymous do."""
    private = cells(
        ok, other=404, anonymous=anonymous_private, unverified=anonymous_private, bad_token=403
    )
    return {"private": private, "public": cells(ok, bad_token=403)}


def any_session(ok: int = 200) -> dict[str, Cells]:
    """Read by anyone, the anonymous phones too, on a private or a public session."""
    return {target: cells(ok) for target in ("private", "public")}


def readable_verified(ok: int = 200) -> dict[str, Cells]:
    """As `readable`, but only for callers past the e-mail code step."""
    refused = {"anonymous": 403, "bad_token": 403, "unverified": 403}
    return {"private": cells(ok, other=404, **refused), "public": cells(ok, **refused)}


def owner_writes(ok: int = 200, targets: tuple[str, ...] = ("private", "public")):
    """Changed by the verified owner, backend and admin, and by nobody else even when the
    session is public (known-failures 23). On the public session only the callers that
    public could matter to are tried."""
    owner_only = cells(ok, other=404, anonymous=403, bad_token=403, unverified=403)
    public = {actor: owner_only[actor] for actor in ("owner", "other", "anonymous", "bad_token")}
    return {target: public if target == "public" else owner_only for target in targets}


def privileged(ok: int = 200, targets: tuple[str, ...] = ("-",)) -> dict[str, Cells]:
    """The pipeline's and admins' routes."""
    return {target: cells(403, backend=ok, admin=ok) for target in targets}


SUBJECT = ("subject",)

# ── the table ───────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # the route's path as the router declares it
    expect: dict[str, Cells]  # target -> actor -> status
    query: str = ""
    # keyword arguments of the request, given the world, the target and the caller
    body: Callable[["World", str, str], dict[str, Any]] = lambda world, target, actor: {}
    prepare: Callable[[AsyncSession, "World"], Any] | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def json(value: Any) -> Callable:
    return lambda world, target, actor: {"json": value}


def about_target(make: Callable[[dict], dict]) -> Callable:
    """A JSON body naming the target's objects (`make` gets its ids)."""
    return lambda world, target, actor: {"json": make(world.ids[target])}


def about_caller(make: Callable[["World", str], dict]) -> Callable:
    """A JSON body that depends on who calls."""
    return lambda world, target, actor: {"json": make(world, actor)}


def picture(world: "World", target: str, actor: str) -> dict:
    return {"files": {"profile_picture": ("me.png", PNG, "image/png")}}


async def mail_codes(tx: AsyncSession, world: "World") -> None:
    """Every user has a live e-mailed code (for `/verify/`)."""
    for actor, user_id in world.user_ids.items():
        user = await tx.get(User, user_id)
        await start_otp_challenge(tx, user, world.settings)
        world.codes[actor] = world.mailbox.code_for(user.email)
    world.codes["unverified"] = world.codes["owner"]


ROWS = [
    # accounts (reference §4.6)
    Row("GET", "/health/", anyone()),
    Row("POST", "/register/", anyone(400), body=json({"username": "newcomer"})),
    Row("POST", "/login/", anyone(400), body=json({"username": "owner", "password": "wrong"})),
    Row("POST", "/reset-otp-challenge/", signed_in()),
    Row(
        "POST",
        "/verify/",
        signed_in(),
        body=about_caller(lambda world, actor: {"otp_token": world.codes.get(actor, "0")}),
        prepare=mail_codes,
    ),
    Row("GET", "/check-otp-verified/", signed_in()),
    Row("POST", "/get_user_info/", own_account(), body=json({"username": "owner"})),
    Row("POST", "/update_profile/", verified(), body=json({"first_name": "Ada"})),
    Row(
        "POST",
        "/update_profile_picture/",
        verified(),
        body=picture,
    ),
    Row("GET", "/user-institutional-use/", signed_in()),
    Row(
        "POST",
        "/user-institutional-use/",
        verified(),
        body=json({"institutional_use": "other_non_commercial"}),
    ),
    Row(
        "POST",
        "/set-institutional-use/",
        verified(),
        body=json({"institutional_use": "patient_care"}),
    ),
    Row(
        "POST",
        "/delete-account/",
        verified(),
        body=about_caller(lambda world, actor: {"confirm": world.usernames.get(actor, "")}),
    ),
    Row("POST", "/reset-password/", anyone(), body=json({"email": "nobody@example.org"})),
    Row(
        "POST",
        "/new-password/",
        anyone(404),
        body=json({"token": "x" * 43, "password": "a new long password"}),
    ),
    Row("GET", "/user-groups/", signed_in()),
    # sessions (reference §4.1)
    Row("GET", "/sessions/", verified()),
    Row("GET", "/sessions/new/", verified()),
    Row("GET", "/sessions/valid/", verified()),
    Row("POST", "/sessions/valid/", verified(), body=json({"quantity": 40, "start": 0})),
    Row("GET", "/sessions/search_sessions/", verified(), query="text=Lab"),
    Row("GET", "/sessions/api_health_check/", anyone()),
    Row("POST", "/sessions/get_session_statuses/", verified(), body=json({"status": "init"})),
    Row("GET", "/sessions/{session_id}/", readable()),
    Row("PATCH", "/sessions/{session_id}/", owner_writes(), body=json({"public": False})),
    Row("PUT", "/sessions/{session_id}/", owner_writes(), body=json({"public": True})),
    Row("DELETE", "/sessions/{session_id}/", owner_writes(204)),
    Row("GET", "/sessions/{session_id}/status/", readable(), query="ret_session=true"),
    Row("GET", "/sessions/{session_id}/get_qr/", owner_writes()),
    Row("GET", "/sessions/{session_id}/new_subject/", owner_writes()),
    Row(
        "GET",
        "/sessions/{session_id}/set_metadata/",
        owner_writes(),
        query="settings_framerate=120",
    ),
    Row(
        "GET",
        "/sessions/{session_id}/set_subject/",
        owner_writes(),
        query="subject_id={subject_id}",
    ),
    Row("GET", "/sessions/{session_id}/record/", owner_writes(), query="name=run"),
    Row("GET", "/sessions/{session_id}/stop/", owner_writes()),
    Row("GET", "/sessions/{session_id}/cancel_trial/", owner_writes()),
    Row("GET", "/sessions/{session_id}/calibration_img/", readable()),
    Row("GET", "/sessions/{session_id}/neutral_img/", readable()),
    Row("GET", "/sessions/{session_id}/get_n_calibrated_cameras/", readable()),
    Row("GET", "/sessions/{session_id}/get_session_settings/", readable()),
    Row("GET", "/sessions/{session_id}/get_session_permission/", readable()),
    Row("GET", "/sessions/{session_id}/save_local/", any_session()),
    Row("GET", "/sessions/{session_id}/useLidar/", any_session()),
    Row(
        "PATCH",
        "/sessions/{session_id}/save_local/",
        owner_writes(),
        body=json({"save_local": True}),
    ),
    Row("PATCH", "/sessions/{session_id}/useLidar/", owner_writes(), body=json({"useLidar": 1})),
    Row("GET", "/sessions/{session_id}/calibration/", owner_writes()),
    Row(
        "POST",
        "/sessions/{session_id}/calibration/",
        owner_writes(),
        body=json({"Cam0": 1, "Cam1": 0}),
    ),
    Row(
        "POST",
        "/sessions/{session_id}/rename/",
        owner_writes(),
        body=json({"sessionNewName": "Gait"}),
    ),
    Row("POST", "/sessions/{session_id}/trash/", owner_writes()),
    Row("POST", "/sessions/{session_id}/restore/", owner_writes()),
    Row("POST", "/sessions/{session_id}/permanent_remove/", owner_writes()),
    Row(
        "POST",
        "/sessions/{session_id}/set_session_status/",
        privileged(targets=("private", "public")),
        body=json({"status": "archived"}),
    ),
    # trials (reference §4.2); the pipeline's own routes answer 404 when no trial waits
    Row("GET", "/trials/", verified()),
    Row("GET", "/trials/dequeue/", privileged(404)),
    Row("GET", "/trials/get_trials_with_status/", privileged(), query="status=recording"),
    Row("GET", "/trials/{trial_id}/", readable(anonymous_private=404)),
    Row("PATCH", "/trials/{trial_id}/", owner_writes(), body=json({"name": "jog"})),
    Row("PUT", "/trials/{trial_id}/", owner_writes(), body=json({"git_commit": "abc123"})),
    Row("DELETE", "/trials/{trial_id}/", owner_writes(204)),
    Row("POST", "/trials/{trial_id}/rename/", owner_writes(), body=json({"trialNewName": "jog"})),
    Row(
        "POST",
        "/trials/{trial_id}/modifyTags/",
        owner_writes(),
        body=json({"trialNewTags": ["fast"]}),
    ),
    Row("POST", "/trials/{trial_id}/trash/", owner_writes()),
    Row("POST", "/trials/{trial_id}/restore/", owner_writes()),
    Row("POST", "/trials/{trial_id}/permanent_remove/", owner_writes()),
    Row("GET", "/trial-tags/{trial_id}/get_tags_trial/", readable_verified()),
    Row("GET", "/trial-tags/", verified()),
    Row(
        "POST",
        "/trial-tags/",
        owner_writes(201),
        body=about_target(lambda ids: {"tag": "x", "trial": ids["trial_id"]}),
    ),
    # subjects (reference §4.5)
    Row("GET", "/subjects/", verified()),
    Row("POST", "/subjects/", verified(201), body=json({"name": "Newcomer"})),
    Row("GET", "/subjects/api_health_check/", verified()),
    Row("GET", "/subjects/{subject_id}/", owner_writes(targets=SUBJECT)),
    Row(
        "PUT",
        "/subjects/{subject_id}/",
        owner_writes(targets=SUBJECT),
        body=json({"name": "Jo", "subject_tags": ["retest"]}),
    ),
    Row(
        "PATCH", "/subjects/{subject_id}/", owner_writes(targets=SUBJECT), body=json({"weight": 71})
    ),
    Row("DELETE", "/subjects/{subject_id}/", owner_writes(204, targets=SUBJECT)),
    Row("POST", "/subjects/{subject_id}/trash/", owner_writes(targets=SUBJECT)),
    Row("POST", "/subjects/{subject_id}/restore/", owner_writes(targets=SUBJECT)),
    Row("POST", "/subjects/{subject_id}/permanent_remove/", owner_writes(targets=SUBJECT)),
    Row("GET", "/subject-tags/{subject_id}/get_tags_subject/", owner_writes(targets=SUBJECT)),
    Row("GET", "/subject-tags/", verified()),
    Row(
        "POST",
        "/subject-tags/",
        owner_writes(201, targets=SUBJECT),
        body=about_target(lambda ids: {"tag": "x", "subject": ids["subject_id"]}),
    ),
    # analysis features this backend does not offer (clients.md §5)
    Row("GET", "/analysis-functions/", signed_in()),
    Row("GET", "/analysis-results/pending/", signed_in()),
    Row("GET", "/analysis-results/states/", signed_in()),
    Row("GET", "/analysis-dashboards/", signed_in()),
    # the app frame's own routes
    Row("GET", "/healthz", anyone()),
    Row("GET", "/metrics", anyone()),
]


def test_every_route_of_the_app_has_a_row_and_every_row_a_route(app):
    routes = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
    }
    table = {(row.method, row.path) for row in ROWS}

    assert len(table) == len(ROWS), "a route has two rows"
    assert routes - NOT_IN_MATRIX - table == set(), "routes without a row"
    assert table - routes == set(), "rows without a route"


# ── the world every row is tried on ─────────────────────────────────────────────────


@dataclass
class World:
    settings: Any
    mailbox: Any
    headers: dict[str, dict[str, str]]
    usernames: dict[str, str]
    user_ids: dict[str, int]
    ids: dict[str, dict[str, str]]  # target -> path parameters
    codes: dict[str, str] = field(default_factory=dict)


async def owner_session(tx: AsyncSession, owner: User, subject_id: int, public: bool) -> dict:
    """A session with a finished two-camera calibration and a stopped `walk` whose one
    video is still uploading."""
    earlier = utcnow() - timedelta(minutes=5)
    session = await make_session(
        tx,
        owner,
        public=public,
        subject_id=subject_id,
        meta={"sessionName": "Lab", "settings": {"framerate": "60"}},
    )
    calibration = await make_trial(tx, session, "calibration", "done", created_at=earlier)
    for _ in range(2):
        await make_video(tx, calibration, "cam.mov", {"max_framerate": 120})
    walk = await make_trial(tx, session, "walk", "stopped")
    await make_video(tx, walk)
    tx.add(TrialTag(trial_id=walk.id, tag="slow"))
    return {"session_id": str(session.id), "trial_id": str(walk.id), "subject_id": subject_id}


async def build_world(tx: AsyncSession, settings, mailbox) -> World:
    users = {
        "owner": await make_user(tx, "owner"),
        "other": await make_user(tx, "other"),
        "backend": await make_user(tx, "pipeline", groups=["backend"]),
        "admin": await make_user(tx, "root", groups=["admin"]),
    }
    headers = {actor: await auth_headers(tx, user) for actor, user in users.items()}
    headers |= {
        "unverified": headers["owner"],
        "anonymous": {},
        "bad_token": {"Authorization": "Token " + "0" * 40},
    }
    subject = await make_subject(tx, users["owner"], "Jo", weight=70.0, height=1.8)
    tx.add(SubjectTag(subject_id=subject.id, tag="healthy"))
    ids = {
        "private": await owner_session(tx, users["owner"], subject.id, public=False),
        "public": await owner_session(tx, users["owner"], subject.id, public=True),
        "subject": {"subject_id": subject.id},
        "-": {"subject_id": subject.id},
    }
    await tx.flush()
    return World(
        settings=settings,
        mailbox=mailbox,
        headers=headers,
        usernames={actor: user.username for actor, user in users.items()} | {"unverified": "owner"},
        user_ids={actor: user.id for actor, user in users.items()},
        ids=ids,
    )


@dataclass
class Matrix:
    tx: AsyncSession
    client: httpx.AsyncClient
    world: World


@pytest.fixture(scope="module")
async def matrix(engine: AsyncEngine, s3_settings, smtp):
    """One world for the whole table; every row and every cell runs in a savepoint that
    is rolled back, so each call sees the world as it was built."""
    settings = service_settings(s3_settings, smtp[1])
    async with rolled_back(engine) as tx:
        world = await build_world(tx, settings, smtp[0])
        async with app_client(settings, tx) as client:
            yield Matrix(tx, client, world)


async def fingerprint(tx: AsyncSession) -> dict[str, str]:
    """A digest of every table of the service (outbox included)."""
    parts = " UNION ALL ".join(
        f"SELECT '{table.name}', md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), ''))"
        f' FROM "{table.name}" r'
        for table in Base.metadata.sorted_tables
    )
    return dict((await tx.execute(text(parts))).all())


async def call(
    matrix: Matrix, row: Row, target: str, actor: str, baselines: dict[bool, dict]
) -> httpx.Response:
    """One cell, in a savepoint rolled back afterwards; a refused call must have changed
    nothing (`baselines`: the data as the call found it, by whether the owner is verified)."""
    tx, world = matrix.tx, matrix.world
    params = world.ids[target]
    savepoint = await tx.begin_nested()
    try:
        unverified = actor == "unverified"
        if unverified:
            owner = world.user_ids["owner"]
            await tx.execute(update(User).where(User.id == owner).values(otp_verified=False))
            if unverified not in baselines:
                baselines[unverified] = await fingerprint(tx)
        response = await matrix.client.request(
            row.method,
            row.path.format(**params),
            params=row.query.format(**params),
            headers=world.headers[actor],
            **row.body(world, target, actor),
        )
        if response.status_code in (401, 403, 404):
            after = await fingerprint(tx)
            assert after == baselines[unverified], f"{actor}'s refused call changed the data"
        return response
    finally:
        await savepoint.rollback()


def refusal_shape(response: httpx.Response) -> Any:
    """The refused call's body, reduced to what the clients rely on."""
    body = response.json()
    if response.status_code == 404:
        return "404" if isinstance(body, str) or list(body) == ["detail"] else body
    return body


EXPECTED_REFUSALS = {
    ("anonymous", 403): NO_CREDENTIALS,
    ("bad_token", 403): BAD_TOKEN,
    ("unverified", 403): NOT_VERIFIED,
    ("anonymous", 401): LOG_IN,
}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
async def test_who_may_call_the_route(matrix: Matrix, row: Row):
    tx = matrix.tx
    observed: dict[str, Cells] = {}
    bodies = {}
    savepoint = await tx.begin_nested()
    try:
        if row.prepare:
            await row.prepare(tx, matrix.world)
        baselines = {False: await fingerprint(tx)}
        for target, expected in row.expect.items():
            observed[target] = {}
            for actor in expected:
                response = await call(matrix, row, target, actor, baselines)
                observed[target][actor] = response.status_code
                if response.status_code in (401, 403, 404):
                    bodies[(target, actor)] = (response.status_code, refusal_shape(response))
    finally:
        await savepoint.rollback()

    wrong = {
        f"{target}/{actor}": f"got {observed[target][actor]}, expected {status}"
        for target, expected in row.expect.items()
        for actor, status in expected.items()
        if observed[target][actor] != status
    }
    assert wrong == {}
    for (target, actor), (status, shape) in bodies.items():
        wanted = EXPECTED_REFUSALS.get((actor, status), "404" if status == 404 else None)
        if wanted is not None:
            assert shape == wanted, (target, actor)
        else:
            assert list(shape) == ["detail"], (target, actor, shape)


async def test_a_token_from_another_scheme_is_refused_like_a_missing_one(matrix: Matrix):
    response = await matrix.client.get("/sessions/", headers={"Authorization": "Bearer abc"})

    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid token header. No credentials provided."}
