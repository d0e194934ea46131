"""Subject routes (reference §4.5) and subject tags."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from session_service import schemas, subjects
from session_service.api.deps import VerifiedUser
from session_service.models import Subject, SubjectTag
from shared.db import Tx, utcnow
from shared.errors import Invalid, NotFound
from shared.forms import read_fields

router = APIRouter()


async def _view(tx: Tx, subject: Subject) -> dict:
    tags = (await subjects.subject_tags(tx, [subject.id]))[subject.id]
    return schemas.subject_json(subject, [t.tag for t in tags])


@router.get("/subjects/")
async def list_subjects(tx: Tx, request: Request, user: VerifiedUser) -> dict:
    query = request.query_params
    found, total = await subjects.list_subjects(tx, user, query)
    if query.get("simple") == "true":
        return {"subjects": [schemas.simple_subject_json(s) for s in found], "total": total}
    tags = await subjects.subject_tags(tx, [s.id for s in found])
    views = [schemas.subject_json(s, [t.tag for t in tags[s.id]]) for s in found]
    return {"subjects": views, "total": total}


@router.post("/subjects/", status_code=201)
async def create_subject(tx: Tx, request: Request, user: VerifiedUser) -> dict:
    subject = await subjects.create_subject(tx, user, await read_fields(request))
    return await _view(tx, subject)


@router.get("/subjects/api_health_check/")
async def health_check(user: VerifiedUser) -> dict:
    return {"status": "True"}


@router.get("/subjects/{subject_id}/")
async def read_subject(subject_id: str, tx: Tx, user: VerifiedUser) -> dict:
    return await _view(tx, await subjects.get_subject(tx, subject_id, user))


@router.api_route("/subjects/{subject_id}/", methods=["PUT", "PATCH"])
async def update_subject(subject_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    subject = await subjects.get_subject(tx, subject_id, user)
    fields = await read_fields(request)
    if request.method == "PATCH":
        fields = {**(await _view(tx, subject)), **fields}
    subjects.apply_fields(subject, fields)
    await subjects.set_tags(tx, subject, fields.get("subject_tags"))
    return await _view(tx, subject)


@router.delete("/subjects/{subject_id}/", status_code=204)
async def delete_subject(subject_id: str, tx: Tx, user: VerifiedUser) -> Response:
    await subjects.remove_subject(tx, await subjects.get_subject(tx, subject_id, user))
    return Response(status_code=204)


@router.post("/subjects/{subject_id}/trash/")
async def trash(subject_id: str, tx: Tx, user: VerifiedUser) -> dict:
    subject = await subjects.get_subject(tx, subject_id, user)
    subject.trashed, subject.trashed_at, subject.updated_at = True, utcnow(), utcnow()
    return await _view(tx, subject)


@router.post("/subjects/{subject_id}/restore/")
async def restore(subject_id: str, tx: Tx, user: VerifiedUser) -> dict:
    subject = await subjects.get_subject(tx, subject_id, user)
    subject.trashed, subject.trashed_at, subject.updated_at = False, None, utcnow()
    return await _view(tx, subject)


@router.post("/subjects/{subject_id}/permanent_remove/")
async def permanent_remove(subject_id: str, tx: Tx, user: VerifiedUser) -> dict:
    await subjects.remove_subject(tx, await subjects.get_subject(tx, subject_id, user))
    return {}


@router.get("/subject-tags/{subject_id}/get_tags_subject/")
async def tags_of_subject(subject_id: str, tx: Tx, user: VerifiedUser):
    try:
        subject = await subjects.get_subject(tx, subject_id, user)
    except NotFound:  # the original answers a bare string here
        return JSONResponse("Subject not found.", status_code=404)
    tags = (await subjects.subject_tags(tx, [subject.id]))[subject.id]
    return [{"id": t.id, "tag": t.tag, "subject_id": subject.id} for t in tags]


@router.get("/subject-tags/")
async def list_subject_tags(tx: Tx, user: VerifiedUser) -> list[dict]:
    mine = select(Subject.id).where(Subject.user_id == user.id)
    stmt = select(SubjectTag).where(SubjectTag.subject_id.in_(mine)).order_by(SubjectTag.tag)
    return [{"tag": t.tag, "subject": t.subject_id} for t in (await tx.scalars(stmt)).all()]


@router.post("/subject-tags/", status_code=201)
async def create_subject_tag(tx: Tx, request: Request, user: VerifiedUser) -> dict:
    fields = await read_fields(request)
    tag = fields.get("tag")
    if not isinstance(tag, str) or not tag.strip():
        raise Invalid("This field is required.", field="tag")
    subject = await subjects.get_subject(tx, fields.get("subject", ""), user)
    row = SubjectTag(subject_id=subject.id, tag=tag.strip()[:256])
    tx.add(row)
    await tx.flush()
    return {"tag": row.tag, "subject": subject.id}
