"""server.api.materials: /api/v1 materials of programs: list, upload (multipart, streamed), change, delete, file.

Who may read or manage is `server.people.enrolment.program_access` (403 otherwise); uploads are typed by
content (415), limited by `limits.max_upload_bytes` (413 naming the limit) and stored by hash.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel

from server import files
from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Material, MaterialKind
from server.errors import ApiError
from server.learning import materials as svc
from server.learning import scormrt, selfstudy
from server.openapi import Upload, endpoint, id_query, int_param, json_response, one_of, parse_body
from server.people import enrolment


class MaterialOut(BaseModel):
    """MaterialOut: an uploaded material (file_url serves it; page_url shows it)."""

    id: int
    program_id: int
    meeting_id: int | None
    title: str
    description: str
    kind: MaterialKind
    filename: str
    mime: str
    size: int
    sha256: str
    created_at: dt.datetime
    file_url: str
    page_url: str
    package_version: str | None = None
    package_reason: str = ""


def material_out(request: web.Request, m: Material) -> MaterialOut:
    """material_out: a Material as MaterialOut (times in the configured timezone)."""
    tz = request.app[CONFIG].tz
    return MaterialOut(id=m.id, program_id=m.program_id, meeting_id=m.meeting_id, title=m.title,
                       description=m.description, kind=m.kind, filename=m.filename, mime=m.mime, size=m.size,
                       sha256=m.sha256, created_at=m.created_at.astimezone(tz),
                       file_url=f"/api/v1/materials/{m.id}/file", page_url=f"/materials/{m.id}")


@endpoint("GET", "/api/v1/programs/{id}/materials", name="api-program-materials",
          summary="Materials of a program (optionally of one meeting or kind)", response=MaterialOut,
          response_list=True, tag="materials",
          query=(("meeting_id", "only this meeting's materials"), ("kind", "document, slides, package, video, image")),
          schemas={"kind": one_of(*(k.value for k in MaterialKind))})
async def list_materials(request: web.Request) -> web.Response:
    """list_materials: a program's materials, newest first."""
    ident = require(request)
    pid = int_param(request, "id")
    meeting_id = id_query(request, "meeting_id")
    kind_raw = request.query.get("kind", "")
    try:
        kind = MaterialKind(kind_raw) if kind_raw else None
    except ValueError:
        raise ApiError(422, "invalid", "kind: không hợp lệ / unknown kind", field="kind") from None
    async with request.app[DB]() as s:
        await enrolment.require_access(s, ident, pid)
        rows = await svc.list_for(s, pid, meeting_id=meeting_id, kind=kind)
    return json_response([material_out(request, m) for m in rows])


@endpoint("POST", "/api/v1/programs/{id}/materials", name="api-program-material-upload",
          summary="Upload a material: multipart/form-data with 'file' and optional 'title', 'description', "
                  "'meeting_id', 'kind' (type checked by content; 413 over limits.max_upload_bytes)",
          response=MaterialOut, status=201, tag="materials",
          upload=Upload(fields=(("title", "title (default: the file name)"), ("description", "a description"),
                                ("meeting_id", "the meeting it belongs to"),
                                ("kind", "document, slides, package, video or image (default: from the content)"))))
async def upload_material(request: web.Request) -> web.Response:
    """upload_material: stream a file into the content store and add it to the program."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        await enrolment.require_access(s, ident, pid, manage=True)
    upload = await svc.receive(request)
    async with request.app[DB]() as s:
        package = None
        if upload.stored.mime == files.ZIP:  # a SCORM package is recognised and extracted (issue 21), else 422
            package = await scormrt.register_upload(s, request.app[CONFIG], upload.stored.hash, upload.stored.path)
        material = await svc.create(s, request, pid, upload, actor_id=ident.user_id)
        await s.commit()
    out = material_out(request, material)
    if package is not None:
        out.package_version, out.package_reason = package.version, package.reason
    return json_response(out, status=201)


async def _material(request: web.Request, manage: bool = False) -> tuple[Material, enrolment.Access]:
    ident = require(request)
    mid = int_param(request, "id")
    async with request.app[DB]() as s:
        material = await svc.get(s, mid)
        access = await enrolment.require_access(s, ident, material.program_id, manage=manage)
    return material, access


@endpoint("GET", "/api/v1/materials/{id}", name="api-material", summary="One material", response=MaterialOut,
          tag="materials")
async def get_material(request: web.Request) -> web.Response:
    """get_material: one material the caller may read."""
    material, _ = await _material(request)
    return json_response(material_out(request, material))


@endpoint("PATCH", "/api/v1/materials/{id}", name="api-material-update",
          summary="Change a material's title, description or meeting", body=svc.MaterialPatch,
          response=MaterialOut, tag="materials")
async def update_material(request: web.Request) -> web.Response:
    """update_material: change the given fields (trainers of the program, operators)."""
    ident = require(request)
    mid = int_param(request, "id")
    data = await parse_body(request, svc.MaterialPatch)
    async with request.app[DB]() as s:
        material = await svc.get(s, mid)
        await enrolment.require_access(s, ident, material.program_id, manage=True)
        await svc.update(s, request, material, data)
        await s.commit()
    return json_response(material_out(request, material))


@endpoint("DELETE", "/api/v1/materials/{id}", name="api-material-delete", summary="Delete a material",
          status=204, tag="materials")
async def delete_material(request: web.Request) -> web.Response:
    """delete_material: remove a material (trainers of the program, operators)."""
    ident = require(request)
    mid = int_param(request, "id")
    async with request.app[DB]() as s:
        material = await svc.get(s, mid)
        await enrolment.require_access(s, ident, material.program_id, manage=True)
        await svc.delete(s, request, material)
        await s.commit()
    return web.Response(status=204)


@endpoint("GET", "/api/v1/materials/{id}/file", name="api-material-file",
          summary="The material's file (inline for PDF, video, audio and images; Range requests give 206)",
          content_type="application/octet-stream", tag="materials",
          query=(("download", "1: as an attachment even when the browser could show it"),),
          partial=True, errors=(410, 416))
async def material_file(request: web.Request) -> web.StreamResponse:
    """material_file: serve the stored file; a learner's full download counts as opening the material."""
    material, access = await _material(request)
    ident = require(request)
    if access.learner and ident.user_id is not None and "Range" not in request.headers \
            and material.kind != MaterialKind.VIDEO:
        async with request.app[DB]() as s:
            await selfstudy.record_open(s, ident.user_id, material.program_id, f"material:{material.id}")
            await s.commit()
    return svc.file_response(request, material, download=request.query.get("download") == "1")
