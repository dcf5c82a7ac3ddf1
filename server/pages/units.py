"""server.pages.units: pages for administrative units (tree by date), classrooms and CSV import.

Staff (operators, trainers, leaders) see the unit tree and the classroom list; operators create and edit
classrooms and import CSV files. The import page uploads with XMLHttpRequest to /api/v1/import/... (progress
bar, CSRF header); without JavaScript the form posts to /import/{kind} and the result is rendered here.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import func, select

from server.api.units import run_import
from server.api.uploads import IMPORT_MAX_BYTES, import_error_response, read_upload
from server.audit import record
from server.auth import require
from server.db.engine import DB
from server.db.models import Classroom, Role, Unit, UnitLevel, User
from server.errors import ApiError
from server.i18n import _, language
from server.people.classrooms import find_classrooms
from server.people.importer import CLASSROOM_COLUMNS, UNIT_COLUMNS, ImportFailed, parse_date
from server.people.units import LEVEL_RANK, REFORM_DATE, is_valid_on, province_map, units_at

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


@dataclass
class Node:
    """Node: one unit in the tree with its children and the number of classrooms below it."""

    unit: Unit
    children: list[Node] = field(default_factory=list)
    classrooms: int = 0
    current: bool = True


def vi_key(text: str) -> str:
    """vi_key: a sort key in Vietnamese alphabetical order (accents ignored, Đ after D)."""
    base = unicodedata.normalize("NFD", text.lower().replace("đ", "d{"))
    return "".join(ch for ch in base if not unicodedata.combining(ch))


def _parse_at(text: str) -> dt.date | None:
    try:
        return parse_date(text) if text else None
    except ValueError:
        return None


@aiohttp_jinja2.template("units.html")
async def units_page(request: web.Request) -> dict[str, Any]:
    """units_page: the unit tree as of a date (?at=YYYY-MM-DD, default today; ?at=all for every period)."""
    require(request, *STAFF)
    today = dt.date.today()
    raw_at = request.query.get("at", "").strip()
    show_all = raw_at == "all"
    at = None if show_all else (_parse_at(raw_at) or today)
    opened = request.query.get("province", "")
    async with request.app[DB]() as s:
        if at is not None:
            units = await units_at(s, at)
        else:
            units = list((await s.scalars(select(Unit).order_by(Unit.code, Unit.valid_from))).all())
        counts = dict((await s.execute(select(Classroom.unit_id, func.count()).where(Classroom.active.is_(True))
                                       .group_by(Classroom.unit_id))).all())
    nodes = {u.id: Node(u, classrooms=counts.get(u.id, 0), current=is_valid_on(u, today)) for u in units}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.unit.parent_id) if node.unit.parent_id is not None else None
        (parent.children if parent is not None else roots).append(node)

    def total(node: Node) -> int:
        node.classrooms += sum(total(child) for child in node.children)
        return node.classrooms

    for root in roots:
        total(root)
    roots.sort(key=lambda n: (n.unit.level != UnitLevel.PROVINCE, vi_key(n.unit.name)))
    for node in nodes.values():
        node.children.sort(key=lambda n: (LEVEL_RANK[n.unit.level], vi_key(n.unit.name)))
    return {"roots": roots, "at": at, "show_all": show_all, "today": today, "reform": REFORM_DATE,
            "before_reform": REFORM_DATE - dt.timedelta(days=1), "unit_count": len(units),
            "lazy": len(units) > TREE_LIMIT, "opened": opened}


async def _province_options(request: web.Request) -> list[Unit]:
    async with request.app[DB]() as s:
        provinces = (await s.scalars(select(Unit).where(Unit.level == UnitLevel.PROVINCE))).all()
    return sorted(provinces, key=lambda u: (vi_key(u.name), u.valid_from or dt.date.min))


@aiohttp_jinja2.template("classrooms.html")
async def classrooms_page(request: web.Request) -> dict[str, Any]:
    """classrooms_page: classrooms with province filter, search, status filter and pages of 50."""
    require(request, *STAFF)
    q = request.query.get("q", "").strip()[:100]
    status = request.query.get("status", "active")
    active = {"active": True, "inactive": False}.get(status)
    try:
        unit_id: int | None = int(request.query.get("unit", "") or request.query.get("province", ""))
    except ValueError:
        unit_id = None
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    async with request.app[DB]() as s:
        views, total = await find_classrooms(s, unit_id=unit_id, q=q, active=active, limit=PAGE_SIZE,
                                             offset=(page - 1) * PAGE_SIZE)
        unit = await s.get(Unit, unit_id) if unit_id is not None else None
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return {"views": views, "total": total, "q": q, "status": status, "unit": unit, "page": page, "pages": pages,
            "provinces": await _province_options(request), "unit_id": unit_id,
            "can_edit": require(request).role == Role.OPERATOR}


@dataclass
class UnitChoice:
    """UnitChoice: one option of the unit select (grouped by province)."""

    id: int
    label: str


async def _unit_choices(request: web.Request, keep: int | None) -> list[tuple[str, list[UnitChoice]]]:
    today = dt.date.today()
    async with request.app[DB]() as s:
        units = {u.id: u for u in (await s.scalars(select(Unit).order_by(Unit.code))).all()}
        provinces = await province_map(s)
    groups: dict[int, list[UnitChoice]] = defaultdict(list)
    for unit in units.values():
        if not is_valid_on(unit, today) and unit.id != keep:
            continue
        old = "" if is_valid_on(unit, today) else f" (≤ {unit.valid_to})"
        groups[provinces.get(unit.id, unit.id)].append(UnitChoice(unit.id, f"{unit.code} · {unit.name}{old}"))
    out = []
    for pid, choices in groups.items():
        province = units.get(pid)
        out.append((province.name if province else "?", sorted(choices, key=lambda c: vi_key(c.label))))
    return sorted(out, key=lambda group: vi_key(group[0]))


def _form_values(room: Classroom | None) -> dict[str, Any]:
    if room is None:
        return {"code": "", "name": "", "unit_id": None, "host": "", "equipment": "", "active": True}
    return {"code": room.code, "name": room.name, "unit_id": room.unit_id, "host": room.host,
            "equipment": room.equipment, "active": room.active}


async def _classroom_form(request: web.Request, room: Classroom | None, values: dict[str, Any],
                          errors: dict[str, str], status: int = 200) -> web.Response:
    accounts: list[User] = []
    if room is not None:
        async with request.app[DB]() as s:
            accounts = list((await s.scalars(select(User).where(User.classroom_id == room.id)
                                             .order_by(User.username))).all())
    context = {"room": room, "values": values, "errors": errors, "accounts": accounts,
               "choices": await _unit_choices(request, values.get("unit_id")),
               "can_edit": require(request).role == Role.OPERATOR}
    return aiohttp_jinja2.render_template("classrooms_form.html", request, context, status=status)


async def classroom_new(request: web.Request) -> web.Response:
    """classroom_new: the empty classroom form."""
    require(request, Role.OPERATOR)
    return await _classroom_form(request, None, _form_values(None), {})


async def _load_room(request: web.Request) -> Classroom:
    try:
        cid = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    async with request.app[DB]() as s:
        room = await s.get(Classroom, cid)
    if room is None:
        raise ApiError(404, "not-found", "Không tìm thấy lớp học. / Classroom not found.")
    return room


async def classroom_view(request: web.Request) -> web.Response:
    """classroom_view: one classroom (editable for operators)."""
    require(request, *STAFF)
    room = await _load_room(request)
    return await _classroom_form(request, room, _form_values(room), {})


async def classroom_save(request: web.Request) -> web.Response:
    """classroom_save: create (/classrooms/new) or update (/classrooms/{id}) from the form."""
    require(request, Role.OPERATOR)
    room = await _load_room(request) if "id" in request.match_info else None
    form = await request.post()
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in ("code", "name", "host", "equipment")}
    values["active"] = form.get("active") == "on"
    errors: dict[str, str] = {}
    try:
        values["unit_id"] = int(str(form.get("unit_id", "")))
    except ValueError:
        values["unit_id"] = None
        errors["unit_id"] = _(request, "Choose a unit.")
    if not values["code"] or len(values["code"]) > 40 or any(c.isspace() for c in values["code"]):
        errors["code"] = _(request, "A code of at most 40 characters, without spaces.")
    if not values["name"] or len(values["name"]) > 200:
        errors["name"] = _(request, "A name of at most 200 characters.")
    if len(values["host"]) > 200:
        errors["host"] = _(request, "At most 200 characters.")
    if len(values["equipment"]) > 5000:
        errors["equipment"] = _(request, "At most 5000 characters.")
    async with request.app[DB]() as s:
        if values["unit_id"] is not None and await s.get(Unit, values["unit_id"]) is None:
            errors["unit_id"] = _(request, "Choose a unit.")
        other = await s.scalar(select(Classroom.id).where(Classroom.code == values["code"]))
        if other is not None and (room is None or other != room.id):
            errors["code"] = _(request, "Another classroom has this code.")
        if errors:
            return await _classroom_form(request, room, values, errors, status=422)
        target = room if room is None else await s.get(Classroom, room.id)
        if target is None:
            target = Classroom(**values)
            s.add(target)
            await s.flush()
            record(s, request, "classroom.create", target=f"classroom:{target.id}", code=target.code,
                   name=target.name)
        else:
            changed = {k: str(v) for k, v in values.items() if getattr(target, k) != v}
            for k, v in values.items():
                setattr(target, k, v)
            record(s, request, "classroom.update", target=f"classroom:{target.id}", code=target.code,
                   changes=changed)
        await s.commit()
        new_id = target.id
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
        context["result"] = await run_import(request, kind, data, filename)
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
