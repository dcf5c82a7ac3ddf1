"""server.schedule.deadlines: regional-meeting documents (plan, joint report, result report) and their deadlines.

The due days and states come from `server.schedule.rules` (`deadlines_of`), always for a given local "today"
so tests and reports can choose the day. `overdue` lists the documents past their due day (the operators' home
page); `server.schedule.reminders` reminds before they fall due. Documents are uploaded to a published regional
meeting by an operator, one of its presenters or an invited classroom; files are typed by content (PDF, DOCX, XLSX,
ODT, ODS), limited to `limits.max_upload_bytes` and kept once per content hash by `server.files`.
Everyone who may see the meeting may download them.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import BodyPartReader, web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server import audit, files
from server.auth import Identity
from server.config import CONFIG
from server.db.models import PRESENTER_ROLES, Base, Meeting, MeetingDocument, MeetingKind, MeetingStatus, Role
from server.errors import ApiError
from server.inputs import malformed_body
from server.schedule import meetings as svc
from server.schedule import rules as schedule
from server.schedule.visibility import visible

ACCEPTED = {"application/pdf": "pdf", files.DOCX: "docx", files.XLSX: "xlsx", files.ODT: "odt", files.ODS: "ods"}
KIND_LABELS = {"plan": ("Kế hoạch của vùng", "Regional plan"),
               "joint_report": ("Báo cáo liên tịch", "Joint report"),
               "result_report": ("Báo cáo kết quả", "Result report")}
PAST_DAYS = 120


@dataclass
class MeetingDeadlines:
    """MeetingDeadlines: a published regional meeting, its three deadlines and its documents."""

    meeting: Meeting
    deadlines: list[schedule.Deadline]
    documents: list[MeetingDocument] = field(default_factory=list)

    def documents_of(self, kind: str) -> list[MeetingDocument]:
        """MeetingDeadlines.documents_of: the files of one kind, newest first."""
        return [d for d in self.documents if d.kind == kind]


def can_upload(ident: Identity, meeting: Meeting) -> bool:
    """can_upload: operators, the meeting's presenters and its invited classrooms, on a published regional meeting."""
    if meeting.kind != MeetingKind.REGIONAL or meeting.status != MeetingStatus.PUBLISHED:
        return False
    if ident.role == Role.OPERATOR:
        return True
    if ident.role in PRESENTER_ROLES:
        return any(u.id == ident.user_id for u in meeting.presenters)
    if ident.role == Role.CLASSROOM:
        return any(c.id == ident.classroom_id for c in meeting.classrooms)
    return False


async def documents(s: AsyncSession, meeting_ids: list[int]) -> dict[int, list[MeetingDocument]]:
    """documents: the documents of these meetings, newest first, by meeting id."""
    out: dict[int, list[MeetingDocument]] = {i: [] for i in meeting_ids}
    if meeting_ids:
        q = (select(MeetingDocument).where(MeetingDocument.meeting_id.in_(meeting_ids))
             .order_by(MeetingDocument.uploaded_at.desc(), MeetingDocument.id.desc()))
        for d in (await s.scalars(q)).all():
            out[d.meeting_id].append(d)
    return out


def build(m: Meeting, docs: list[MeetingDocument], today: dt.date, tz: ZoneInfo) -> MeetingDeadlines:
    """build: the deadlines of one meeting given its documents (received = time of the first file of a kind)."""
    first: dict[str, dt.datetime] = {}
    for d in docs:
        if d.kind not in first or d.uploaded_at < first[d.kind]:
            first[d.kind] = d.uploaded_at
    return MeetingDeadlines(m, schedule.deadlines_of(m, first, today, tz), docs)


async def for_meeting(s: AsyncSession, m: Meeting, today: dt.date, tz: ZoneInfo) -> MeetingDeadlines | None:
    """for_meeting: the deadlines of a published regional meeting (None for other meetings)."""
    if m.kind != MeetingKind.REGIONAL or m.status != MeetingStatus.PUBLISHED:
        return None
    return build(m, (await documents(s, [m.id]))[m.id], today, tz)


async def dashboard(s: AsyncSession, ident: Identity | None, today: dt.date, tz: ZoneInfo,
                    state: schedule.DeadlineState | None = None) -> list[MeetingDeadlines]:
    """dashboard: the published regional meetings `ident` may see (ended at most 120 days ago) with deadlines
    (`ident` None: all of them, for the server's own work: the reminders).

    With `state`, only the meetings that have a deadline in that state. Sorted by the nearest open due day.
    """
    since = dt.datetime.combine(today - dt.timedelta(days=PAST_DAYS), dt.time(), tzinfo=tz)
    q = (select(Meeting) if ident is None else visible(select(Meeting), ident)) \
        .options(selectinload(Meeting.program), selectinload(Meeting.presenters),
                 selectinload(Meeting.classrooms), selectinload(Meeting.provinces)) \
        .where(Meeting.kind == MeetingKind.REGIONAL, Meeting.status == MeetingStatus.PUBLISHED,
               Meeting.ends_at >= since) \
        .order_by(Meeting.starts_at, Meeting.id)
    meetings = list((await s.scalars(q)).all())
    docs = await documents(s, [m.id for m in meetings])
    rows = [build(m, docs[m.id], today, tz) for m in meetings]
    if state is not None:
        rows = [r for r in rows if any(d.state == state for d in r.deadlines)]

    def key(r: MeetingDeadlines) -> tuple[int, dt.date, int]:
        open_days = [d.due for d in r.deadlines if d.state != "received"]
        return (0 if open_days else 1, min(open_days) if open_days else r.deadlines[-1].due, r.meeting.id)

    return sorted(rows, key=key)


@dataclass(frozen=True)
class Overdue:
    """Overdue: one document of a regional meeting past its due day, not received."""

    meeting: Meeting
    deadline: schedule.Deadline

    @property
    def days_late(self) -> int:
        """Overdue.days_late: days since the due day."""
        return -self.deadline.days_left


async def overdue(s: AsyncSession, ident: Identity, today: dt.date, tz: ZoneInfo) -> list[Overdue]:
    """overdue: the documents `ident`'s meetings are missing past their due day, the longest overdue first."""
    rows = await dashboard(s, ident, today, tz, "overdue")
    out = [Overdue(r.meeting, d) for r in rows for d in r.deadlines if d.state == "overdue"]
    return sorted(out, key=lambda o: (o.deadline.due, o.meeting.id))


# --- uploads --------------------------------------------------------------------------------------

def _not_yours() -> ApiError:
    return ApiError(403, "forbidden", "Bạn không được nộp tài liệu cho buổi tập huấn này. / "
                                      "You may not upload documents to this meeting.")


def _refused(kind: str) -> ApiError:
    return ApiError(415, "unsupported-type",
                    f"Chỉ nhận tệp PDF, Word (DOCX), Excel (XLSX) hoặc OpenDocument (ODT, ODS); tệp này là {kind}. / "
                    f"Only PDF, Word (DOCX), Excel (XLSX) or OpenDocument (ODT, ODS) files are accepted; "
                    f"this is {kind}.")


def _too_large(limit: int) -> ApiError:
    mb = max(1, limit // (1024 * 1024))
    return ApiError(413, "too-large", f"Tệp quá lớn (tối đa {mb} MB). / The file is too large (at most {mb} MB).")


def _bad_kind() -> ApiError:
    return ApiError(422, "invalid", "kind: phải là plan, joint_report hoặc result_report / "
                                    "must be plan, joint_report or result_report", field="kind")


async def _referenced(s: AsyncSession, digest: str) -> bool:
    if await s.scalar(select(MeetingDocument.id).where(MeetingDocument.sha256 == digest).limit(1)):
        return True
    materials = Base.metadata.tables.get("materials")
    if materials is not None and "sha256" in materials.c:
        return bool(await s.scalar(select(materials.c.id).where(materials.c.sha256 == digest).limit(1)))
    return False


@dataclass(frozen=True)
class Upload:
    """Upload: a stored document file with its declared kind and original name."""

    kind: str
    filename: str
    stored: files.StoredFile


async def receive(request: web.Request, s: AsyncSession) -> Upload:
    """receive: read a multipart upload (`kind` field or ?kind=, then a `file` part) into the content store.

    413 past `limits.max_upload_bytes`, 415 when the content is not an accepted document (the stored
    copy is dropped unless another record uses it), 422 for a wrong kind, 400 without a file.
    """
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported-media-type", "Cần gửi multipart/form-data. / Send multipart/form-data.")
    limit = request.app[CONFIG].limits.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 65_536:
        raise _too_large(limit)
    kind = request.query.get("kind", "")
    with malformed_body():
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "kind":
                kind = (await part.text()).strip() or kind
            elif part.name == "file":
                if kind not in schedule.DOCUMENT_KINDS:
                    raise _bad_kind()
                root = files.uploads_root(request.app[CONFIG])
                try:
                    stored = await files.store(files.part_chunks(part), limit, root)
                except files.TooLarge:
                    raise _too_large(limit) from None
                if stored.mime not in ACCEPTED:
                    if not await _referenced(s, stored.hash):
                        stored.path.unlink(missing_ok=True)
                    raise _refused(stored.mime)
                name = Path(part.filename or f"{kind}.{ACCEPTED[stored.mime]}").name[:200]
                return Upload(kind, name, stored)
            else:
                await part.release()
    raise ApiError(400, "bad-request", "Thiếu tệp (trường 'file'). / No file (field 'file').")


async def add_document(s: AsyncSession, request: web.Request | None, ident: Identity, meeting: Meeting,
                       upload: Upload) -> MeetingDocument:
    """add_document: attach a stored file to a meeting (403 unless `can_upload`; audited; the caller commits)."""
    if not can_upload(ident, meeting):
        raise _not_yours()
    doc = MeetingDocument(meeting_id=meeting.id, kind=upload.kind, filename=upload.filename,
                          sha256=upload.stored.hash, size=upload.stored.size, content_type=upload.stored.mime,
                          uploaded_at=svc.utcnow(), uploaded_by=ident.user_id,
                          classroom_id=ident.classroom_id if ident.role == Role.CLASSROOM else None)
    s.add(doc)
    await s.flush()
    audit.record(s, request, "meeting.document", f"meeting:{meeting.id}", kind=upload.kind, filename=upload.filename,
                 sha256=upload.stored.hash, size=upload.stored.size)
    return doc


async def upload_document(s: AsyncSession, request: web.Request, ident: Identity, meeting: Meeting) -> MeetingDocument:
    """upload_document: the page's and the API's upload: 403 before reading anything unless `can_upload`, then
    `receive` and `add_document` (the caller commits)."""
    if not can_upload(ident, meeting):
        raise _not_yours()
    return await add_document(s, request, ident, meeting, await receive(request, s))


async def get_document(s: AsyncSession, ident: Identity, meeting_id: int, document_id: int) -> MeetingDocument:
    """get_document: a document of a meeting `ident` may see, or 404."""
    await svc.get_meeting(s, ident, meeting_id)
    doc = await s.get(MeetingDocument, document_id)
    if doc is None or doc.meeting_id != meeting_id:
        raise svc.not_found()
    return doc


def download(request: web.Request, doc: MeetingDocument) -> web.FileResponse:
    """download: the stored file as an attachment with its original name."""
    path = files.path_of(files.uploads_root(request.app[CONFIG]), doc.sha256)
    if not path.exists():
        raise svc.not_found()
    quoted = urllib.parse.quote(doc.filename)
    return web.FileResponse(path, headers={
        "Content-Type": doc.content_type,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
        "Cache-Control": "private, no-store",
    })
