"""server.api.units: /api/v1 units, classrooms and CSV import.

Staff (operators, trainers, leaders) read units and classrooms; operators create, update and import.
Classroom accounts, learners and guests are refused (403). Every write is audit-logged.
Import bodies are CSV (``text/csv``) or a multipart form with a ``file`` part (`server.api.uploads`);
errors come back as 422 ``{"error": {...}, "errors": [{"row", "message", "text"}]}`` and nothing is written.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.uploads import import_error_response, read_upload
from server.db.engine import DB
from server.db.models import Role, Unit, UnitLevel
from server.errors import ApiError
from server.openapi import FLAG, Upload, endpoint, id_query, int_param, int_query, json_response, one_of, parse_body
from server.people import classrooms as rooms
from server.people import units as units_svc
from server.people.importer import ImportFailed, parse_date, run_import

STAFF = (Role.OPERATOR, Role.TRAINER, Role.LEADER)
OPERATOR = (Role.OPERATOR,)


class UnitOut(BaseModel):
    """UnitOut: an administrative unit."""

    id: int
    code: str
    name: str
    level: UnitLevel
    parent_id: int | None
    valid_from: dt.date | None
    valid_to: dt.date | None

    @classmethod
    def of(cls, unit: Unit) -> UnitOut:
        """UnitOut.of: from a Unit row."""
        return cls(id=unit.id, code=unit.code, name=unit.name, level=unit.level, parent_id=unit.parent_id,
                   valid_from=unit.valid_from, valid_to=unit.valid_to)


class ClassroomOut(BaseModel):
    """ClassroomOut: an online classroom with its unit, province and linked accounts."""

    id: int
    code: str
    name: str
    unit_id: int
    unit_code: str
    unit_name: str
    province_id: int | None
    province_name: str
    host: str
    equipment: str
    active: bool
    accounts: list[str]

    @classmethod
    def of(cls, view: rooms.ClassroomView) -> ClassroomOut:
        """ClassroomOut.of: from a ClassroomView."""
        room = view.classroom
        return cls(id=room.id, code=room.code, name=room.name, unit_id=room.unit_id, unit_code=view.unit.code,
                   unit_name=view.unit.name, province_id=view.province.id if view.province else None,
                   province_name=view.province.name if view.province else "", host=room.host,
                   equipment=room.equipment, active=room.active, accounts=list(view.accounts))


class ImportOut(BaseModel):
    """ImportOut: what an import wrote."""

    kind: str
    rows: int
    created: int
    updated: int
    unchanged: int


def _date_query(request: web.Request, name: str) -> dt.date | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    try:
        return parse_date(text)
    except ValueError:
        raise ApiError(422, "invalid", f"{name}: ngày không hợp lệ (YYYY-MM-DD) / not a valid date (YYYY-MM-DD)",
                       field=name) from None


@endpoint("GET", "/api/v1/units", name="api-units", summary="List administrative units", roles=STAFF,
          response=UnitOut, response_list=True, tag="units",
          query=(("at", "only units valid on this date (YYYY-MM-DD)"), ("parent", "children of this unit id"),
                 ("level", "province, district or commune"), ("q", "code or name contains")),
          schemas={"level": one_of(*(lv.value for lv in UnitLevel))})
async def list_units(request: web.Request) -> web.Response:
    """list_units: units (valid on ?at=, under ?parent=, of ?level=), by code."""
    at = _date_query(request, "at")
    parent = id_query(request, "parent")
    level_text = request.query.get("level", "").strip()
    try:
        level = UnitLevel(level_text) if level_text else None
    except ValueError:
        raise ApiError(422, "invalid", "level: province, district, commune", field="level") from None
    q = request.query.get("q", "").strip().lower()
    async with request.app[DB]() as s:
        units = await units_svc.find_units(s, at=at, level=level, parent_id=parent)
    if q:
        units = [u for u in units if q in u.code.lower() or q in u.name.lower()]
    return json_response([UnitOut.of(u) for u in units])


@endpoint("GET", "/api/v1/units/{id}", name="api-unit", summary="One administrative unit", roles=STAFF,
          response=UnitOut, tag="units")
async def get_unit(request: web.Request) -> web.Response:
    """get_unit: one unit by id."""
    async with request.app[DB]() as s:
        unit = await units_svc.get_unit(s, int_param(request, "id"))
    if unit is None:
        raise units_svc.not_found()
    return json_response(UnitOut.of(unit))


@endpoint("POST", "/api/v1/units", name="api-unit-create", summary="Create an administrative unit", roles=OPERATOR,
          body=units_svc.UnitIn, response=UnitOut, status=201, tag="units")
async def create_unit(request: web.Request) -> web.Response:
    """create_unit: add a unit (checked like an imported row)."""
    body = await parse_body(request, units_svc.UnitIn)
    async with request.app[DB]() as s:
        unit = await units_svc.create_unit(s, request, body)
        await s.commit()
    return json_response(UnitOut.of(unit), status=201)


@endpoint("PATCH", "/api/v1/units/{id}", name="api-unit-update", summary="Change an administrative unit",
          roles=OPERATOR, body=units_svc.UnitPatch, response=UnitOut, tag="units")
async def update_unit(request: web.Request) -> web.Response:
    """update_unit: change some fields of a unit."""
    body = await parse_body(request, units_svc.UnitPatch)
    async with request.app[DB]() as s:
        unit = await units_svc.update_unit(s, request, int_param(request, "id"), body.model_dump(exclude_unset=True))
        await s.commit()
    return json_response(UnitOut.of(unit))


async def _classroom_out(s: AsyncSession, classroom_id: int) -> ClassroomOut:
    view = await rooms.classroom_view(s, classroom_id)
    if view is None:
        raise units_svc.not_found()
    return ClassroomOut.of(view)


@endpoint("GET", "/api/v1/classrooms", name="api-classrooms", summary="List classrooms", roles=STAFF,
          response=ClassroomOut, response_list=True, tag="classrooms",
          query=(("unit", "classrooms of this unit and the units below it (e.g. a province id)"),
                 ("q", "code, name or host contains"), ("active", "true or false (default: both)"),
                 ("limit", "at most this many (default 1000, max 10000)"), ("offset", "skip this many")),
          schemas={"active": FLAG})
async def list_classrooms(request: web.Request) -> web.Response:
    """list_classrooms: classrooms by code (the total is in the X-Total-Count header)."""
    unit_id = id_query(request, "unit")
    active_text = request.query.get("active", "").strip().lower()
    if active_text not in ("", "true", "false", "1", "0"):
        raise ApiError(422, "invalid", "active: true | false", field="active")
    active = None if not active_text else active_text in ("true", "1")
    limit = max(1, min(int_query(request, "limit", 1000) or 1000, 10_000))
    offset = int_query(request, "offset", 0, low=0)
    async with request.app[DB]() as s:
        views, total = await rooms.find_classrooms(s, unit_id=unit_id, q=request.query.get("q", ""), active=active,
                                                   limit=limit, offset=offset)
    resp = json_response([ClassroomOut.of(v) for v in views])
    resp.headers["X-Total-Count"] = str(total)
    return resp


@endpoint("GET", "/api/v1/classrooms/{id}", name="api-classroom", summary="One classroom", roles=STAFF,
          response=ClassroomOut, tag="classrooms")
async def get_classroom(request: web.Request) -> web.Response:
    """get_classroom: one classroom by id."""
    async with request.app[DB]() as s:
        return json_response(await _classroom_out(s, int_param(request, "id")))


@endpoint("POST", "/api/v1/classrooms", name="api-classroom-create", summary="Create a classroom",
          roles=OPERATOR, body=rooms.ClassroomIn, response=ClassroomOut, status=201, tag="classrooms",
          errors=(409,))
async def create_classroom(request: web.Request) -> web.Response:
    """create_classroom: add a classroom (409 if the code exists)."""
    body = await parse_body(request, rooms.ClassroomIn)
    async with request.app[DB]() as s:
        room = await rooms.save_classroom(s, request, None, body.model_dump())
        await s.commit()
        return json_response(await _classroom_out(s, room.id), status=201)


@endpoint("PATCH", "/api/v1/classrooms/{id}", name="api-classroom-update", summary="Change a classroom",
          roles=OPERATOR, body=rooms.ClassroomPatch, response=ClassroomOut, tag="classrooms",
          errors=(409,))
async def update_classroom(request: web.Request) -> web.Response:
    """update_classroom: change some fields of a classroom (active=false deactivates it)."""
    body = await parse_body(request, rooms.ClassroomPatch)
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise ApiError(422, "invalid", "Không được để null. / Fields may not be null.")
    cid = int_param(request, "id")
    async with request.app[DB]() as s:
        room = await rooms.get_classroom(s, cid)
        if room is None:
            raise units_svc.not_found()
        await rooms.save_classroom(s, request, room, changes)
        await s.commit()
        return json_response(await _classroom_out(s, cid))


@endpoint("POST", "/api/v1/classrooms/{id}/deactivate", name="api-classroom-deactivate",
          summary="Deactivate a classroom (kept for history; no longer invited)", roles=OPERATOR,
          response=ClassroomOut, tag="classrooms")
async def deactivate_classroom(request: web.Request) -> web.Response:
    """deactivate_classroom: mark a classroom inactive."""
    cid = int_param(request, "id")
    async with request.app[DB]() as s:
        room = await rooms.get_classroom(s, cid)
        if room is None:
            raise units_svc.not_found()
        await rooms.deactivate_classroom(s, request, room)
        await s.commit()
        return json_response(await _classroom_out(s, cid))


async def _import(request: web.Request, kind: str) -> web.Response:
    data, filename = await read_upload(request)
    try:
        result = await run_import(request.app[DB], request, kind, data, filename)
    except ImportFailed as exc:
        return import_error_response(request, exc)
    return json_response(ImportOut(kind=kind, rows=result.rows, created=result.created, updated=result.updated,
                                   unchanged=result.unchanged))
@endpoint("POST", "/api/v1/import/units", name="api-units-csv",
          summary="Import units from CSV (code,name,level,parent_code,valid_from,valid_to)", roles=OPERATOR,
          response=ImportOut, tag="import",
          upload=Upload(csv=True))
async def import_units_api(request: web.Request) -> web.Response:
    """import_units_api: CSV body or multipart `file`; 422 lists every row error and writes nothing."""
    return await _import(request, "units")


@endpoint("POST", "/api/v1/import/classrooms", name="api-classrooms-csv",
          summary="Import classrooms from CSV (code,name,unit_code,host,equipment,account_username,active)",
          roles=OPERATOR, response=ImportOut, tag="import",
          upload=Upload(csv=True))
async def import_classrooms_api(request: web.Request) -> web.Response:
    """import_classrooms_api: CSV body or multipart `file`; 422 lists every row error and writes nothing."""
    return await _import(request, "classrooms")
