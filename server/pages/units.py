"""server.pages.units: pages for administrative units (tree by date), classrooms and CSV import.

Staff (operators, trainers, leaders) see the unit tree and the classroom list; operators create and edit
classrooms and import CSV files. The import page uploads with XMLHttpRequest to /api/v1/import/... (progress
bar, CSRF header); without JavaScript the form posts to /import/{kind} and the result is rendered here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError

from server import formats
from server.api.uploads import IMPORT_MAX_BYTES, import_error_response, read_upload
from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Classroom, Role
from server.errors import ApiError
from server.i18n import _, language
from server.inputs import MAX_PAGE, read_form
from server.openapi import int_param, parse_int
from server.people import classrooms as rooms
from server.people import units as units_svc
from server.people.importer import CLASSROOM_COLUMNS, UNIT_COLUMNS, ImportFailed, parse_date, run_import
from server.people.units import REFORM_DATE

STAFF = (Role.OPERATOR, Role.TRAINER, Role.LEADER)
PAGE_SIZE = 50
TREE_LIMIT = 2000
SAMPLES = {
    "units": "code,name,level,parent_code,valid_from,valid_to\n"
             "14,Sơn La,province,,,\n"
             "14-H01,Huyện Mẫu (ví dụ),district,14,,2025-06-30\n"
             "14-X001,Xã Mẫu (ví dụ),commune,14-H01,,2025-06-30\n",
    "classrooms": "code,name,unit_code,host,equipment,account_username,active\n"
                  "SL-01,Phòng học trực tuyến mẫu,14-H01,Trường THCS mẫu,"
                  "\"PC, webcam, loa, máy chiếu\",,1\n",
}
FIELD_MESSAGES = {
    "code": "A code of at most 40 characters, without spaces.",
    "name": "A name of at most 200 characters.",
    "unit_id": "Choose a unit.",
    "host": "At most 200 characters.",
    "equipment": "At most 5000 characters.",
}


def _parse_at(text: str) -> dt.date | None:
    try:
        return parse_date(text) if text else None
    except ValueError:
        return None


@aiohttp_jinja2.template("units.html")
async def units_page(request: web.Request) -> dict[str, Any]:
    """units_page: the unit tree as of a date (?at=YYYY-MM-DD, default today; ?at=all for every period)."""
    require(request, *STAFF)
    today = formats.today(request.app[CONFIG].tz)
    raw_at = request.query.get("at", "").strip()
    show_all = raw_at == "all"
    at = None if show_all else (_parse_at(raw_at) or today)
    opened = request.query.get("province", "")
    async with request.app[DB]() as s:
        roots, count = await units_svc.unit_tree(s, at, today)
    return {"roots": roots, "at": at, "show_all": show_all, "today": today, "reform": REFORM_DATE,
            "before_reform": REFORM_DATE - dt.timedelta(days=1), "unit_count": count,
            "lazy": count > TREE_LIMIT, "opened": opened}


@aiohttp_jinja2.template("classrooms.html")
async def classrooms_page(request: web.Request) -> dict[str, Any]:
    """classrooms_page: classrooms with province filter, search, status filter and pages of 50."""
    require(request, *STAFF)
    q = request.query.get("q", "").strip()[:100]
    status = request.query.get("status", "active")
    active = {"active": True, "inactive": False}.get(status)
    unit_id = parse_int(request.query.get("unit", "") or request.query.get("province", ""))
    page = min(MAX_PAGE, max(1, parse_int(request.query.get("page", "1"), "page") or 1))
    async with request.app[DB]() as s:
        views, total = await rooms.find_classrooms(s, unit_id=unit_id, q=q, active=active, limit=PAGE_SIZE,
                                                   offset=(page - 1) * PAGE_SIZE)
        unit = await units_svc.get_unit(s, unit_id) if unit_id is not None else None
        provinces = await units_svc.provinces_by_name(s)
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return {"views": views, "total": total, "q": q, "status": status, "unit": unit, "page": page, "pages": pages,
            "provinces": provinces, "unit_id": unit_id, "can_edit": require(request).role == Role.OPERATOR}


def _form_values(room: Classroom | None) -> dict[str, Any]:
    if room is None:
        return {"code": "", "name": "", "unit_id": None, "host": "", "equipment": "", "active": True}
    return {"code": room.code, "name": room.name, "unit_id": room.unit_id, "host": room.host,
            "equipment": room.equipment, "active": room.active}


async def _classroom_form(request: web.Request, room: Classroom | None, values: dict[str, Any],
                          errors: dict[str, str], status: int = 200) -> web.Response:
    async with request.app[DB]() as s:
        accounts = await rooms.classroom_accounts(s, room.id) if room is not None else []
        choices = await units_svc.unit_choices(s, formats.today(request.app[CONFIG].tz), values.get("unit_id"))
    context = {"room": room, "values": values, "errors": errors, "accounts": accounts, "choices": choices,
               "can_edit": require(request).role == Role.OPERATOR}
    return aiohttp_jinja2.render_template("classrooms_form.html", request, context, status=status)


async def classroom_new(request: web.Request) -> web.Response:
    """classroom_new: the empty classroom form."""
    require(request, Role.OPERATOR)
    return await _classroom_form(request, None, _form_values(None), {})


async def _load_room(request: web.Request) -> Classroom:
    cid = int_param(request, "id")
    async with request.app[DB]() as s:
        room = await rooms.get_classroom(s, cid)
    if room is None:
        raise ApiError(404, "not-found", "Không tìm thấy lớp học. / Classroom not found.")
    return room


async def classroom_view(request: web.Request) -> web.Response:
    """classroom_view: one classroom (editable for operators)."""
    require(request, *STAFF)
    room = await _load_room(request)
    return await _classroom_form(request, room, _form_values(room), {})


async def classroom_save(request: web.Request) -> web.Response:
    """classroom_save: create (/classrooms/new) or update (/classrooms/{id}) from the form (the checks of
    `server.people.classrooms.ClassroomIn`, each shown at its field)."""
    require(request, Role.OPERATOR)
    room = await _load_room(request) if "id" in request.match_info else None
    form = await read_form(request)
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in ("code", "name", "host", "equipment")}
    values["active"] = form.get("active") == "on"
    values["unit_id"] = parse_int(form.get("unit_id"))
    errors: dict[str, str] = {}
    try:
        rooms.ClassroomIn.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "code"
            errors.setdefault(name, _(request, FIELD_MESSAGES.get(name, FIELD_MESSAGES["code"])))
    async with request.app[DB]() as s:
        clash = await rooms.clashes(s, code=values["code"], unit_id=values["unit_id"],
                                    classroom_id=room.id if room else None)
        if "unit_id" in clash:
            errors["unit_id"] = _(request, "Choose a unit.")
        if "code" in clash:
            errors["code"] = _(request, "Another classroom has this code.")
        if errors:
            return await _classroom_form(request, room, values, errors, status=422)
        target = await rooms.get_classroom(s, room.id) if room is not None else None
        saved = await rooms.save_classroom(s, request, target, values)
        await s.commit()
        new_id = saved.id
    raise web.HTTPSeeOther(location=str(request.app.router["classroom"].url_for(id=str(new_id))) + "?saved=1")


@aiohttp_jinja2.template("import.html")
async def import_page(request: web.Request) -> dict[str, Any]:
    """import_page: upload a units or classrooms CSV (progress bar; errors listed by row)."""
    require(request, Role.OPERATOR)
    return {"result": None, "errors": [], "kind": "", "unit_columns": UNIT_COLUMNS,
            "classroom_columns": CLASSROOM_COLUMNS, "max_mb": IMPORT_MAX_BYTES // (1024 * 1024)}


async def import_post(request: web.Request) -> web.Response:
    """import_post: the no-JavaScript upload (multipart form with ?csrf_token=); renders the result."""
    require(request, Role.OPERATOR)
    kind = request.match_info["kind"]
    context: dict[str, Any] = {"result": None, "errors": [], "kind": kind, "unit_columns": UNIT_COLUMNS,
                               "classroom_columns": CLASSROOM_COLUMNS, "max_mb": IMPORT_MAX_BYTES // (1024 * 1024)}
    status = 200
    data, filename = await read_upload(request)
    try:
        context["result"] = await run_import(request.app[DB], request, kind, data, filename)
    except ImportFailed as exc:
        if "application/json" in request.headers.get("Accept", ""):
            return import_error_response(request, exc)
        lang = language(request)
        context["errors"] = [e.text(lang) for e in exc.errors]
        status = 422
    return aiohttp_jinja2.render_template("import.html", request, context, status=status)


async def import_sample(request: web.Request) -> web.Response:
    """import_sample: an example CSV with the header row and a few rows."""
    require(request, *STAFF)
    kind = request.match_info["kind"]
    return web.Response(body=("\ufeff" + SAMPLES[kind]).encode(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="taphuan-{kind}-mau.csv"'})


def setup(app: web.Application) -> None:
    """setup: add the units, classrooms and import routes."""
    app.router.add_get("/units", units_page, name="units")
    app.router.add_get("/classrooms", classrooms_page, name="classrooms")
    app.router.add_get("/classrooms/new", classroom_new, name="classroom-new")
    app.router.add_post("/classrooms/new", classroom_save)
    app.router.add_get(r"/classrooms/{id:\d+}", classroom_view, name="classroom")
    app.router.add_post(r"/classrooms/{id:\d+}", classroom_save)
    app.router.add_get("/import", import_page, name="importer")
    app.router.add_post("/import/{kind:units|classrooms}", import_post, name="importer-upload")
    app.router.add_get("/import/sample/{kind:units|classrooms}.csv", import_sample, name="importer-sample")
