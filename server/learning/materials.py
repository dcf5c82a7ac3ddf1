"""server.learning.materials: documents, slides, e-learning packages and lecture videos of a program or meeting.

Uploads are multipart forms (`file` part, optional `title`, `description`, `meeting_id`, `kind`)
streamed into the content store (`server.files.store`): at most `limits.max_upload_bytes` (413 naming
the limit), typed by their content (415 for anything else than `files.ACCEPTED`, e.g. a renamed
executable), stored once per SHA-256. A material's kind follows from its type (a PDF or legacy Office
file may be called slides). Downloads answer with the sniffed type, a file name whose extension
matches it, and `inline` for what browsers show themselves (PDF, video, audio, images) unless a
download is asked for; aiohttp's FileResponse serves Range requests (206) for video seeking.
Who may read or manage a program's materials is `server.people.enrolment.program_access`. Writes are audited.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit, files
from server.config import CONFIG
from server.db.models import Material, MaterialKind, utcnow
from server.errors import ApiError
from server.inputs import Id, check_id, malformed_body
from server.schedule.meetings import check_program_meeting

Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
INLINE_PREFIXES = ("application/pdf", "video/", "audio/", "image/")
FIELD_LIMIT = 20_000

KINDS: dict[str, tuple[MaterialKind, ...]] = {
    "application/pdf": (MaterialKind.DOCUMENT, MaterialKind.SLIDES),
    files.OLE2: (MaterialKind.DOCUMENT, MaterialKind.SLIDES),
    files.DOCX: (MaterialKind.DOCUMENT,), files.XLSX: (MaterialKind.DOCUMENT,), files.ODT: (MaterialKind.DOCUMENT,),
    files.ODS: (MaterialKind.DOCUMENT,), files.PPTX: (MaterialKind.SLIDES,), files.ODP: (MaterialKind.SLIDES,),
    files.ZIP: (MaterialKind.PACKAGE,),
    "video/mp4": (MaterialKind.VIDEO,), "video/webm": (MaterialKind.VIDEO,), "audio/mp4": (MaterialKind.VIDEO,),
    "audio/mpeg": (MaterialKind.VIDEO,),
    "image/png": (MaterialKind.IMAGE,), "image/jpeg": (MaterialKind.IMAGE,), "image/gif": (MaterialKind.IMAGE,),
}


class MaterialPatch(BaseModel):
    """MaterialPatch: the material fields to change (omitted fields stay)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    title: Title | None = None
    description: Text | None = None
    meeting_id: Id | None = None


@dataclass
class Upload:
    """Upload: a stored file with the form fields that came with it."""

    stored: files.StoredFile
    filename: str
    title: str
    description: str
    meeting_id: int | None
    kind: str


def mb(n: int) -> str:
    """mb: a byte count for messages: "2 GB", "500 MB", "1.5 MB", "4 KB"."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def too_large(limit: int) -> ApiError:
    """too_large: the 413 naming the upload limit."""
    return ApiError(413, "too-large", f"Tệp quá lớn: tối đa {mb(limit)}. / The file is too large: at most {mb(limit)}.",
                    limit_bytes=limit)


def refused(mime: str) -> ApiError:
    """refused: the 415 for a file whose content is not an accepted type."""
    what = "tệp chương trình chạy được" if mime in files.EXECUTABLES else "loại tệp này"
    what_en = "an executable program" if mime in files.EXECUTABLES else "this type of file"
    return ApiError(415, "unsupported-media-type",
                    f"Không nhận {what}. Hãy gửi PDF, Word, PowerPoint, Excel, gói ZIP, video MP4/WebM hoặc ảnh. / "
                    f"Not accepted: {what_en}. Send PDF, Word, PowerPoint, Excel, a ZIP package, MP4/WebM video "
                    f"or an image.", detected=mime)


def _invalid(field: str, vi: str, en: str) -> ApiError:
    return ApiError(422, "invalid", f"{field}: {vi} / {en}", field=field)


def clean_filename(name: str, mime: str) -> str:
    """clean_filename: a safe display file name whose extension matches the sniffed type."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    name = re.sub(r"[\x00-\x1f\x7f\"<>|:*?]", "", name)[:200] or "tep"
    ext = files.ACCEPTED.get(mime, "bin")
    stem, dot, old = name.rpartition(".")
    if not dot:
        stem = name
    same = {"doc": ("doc", "ppt", "xls"), "jpg": ("jpg", "jpeg"), "mp4": ("mp4", "m4v")}.get(ext, (ext,))
    if old.lower() in same:
        return name
    return f"{stem}.{ext}"


async def _text(part: BodyPartReader) -> str:
    raw = await part.read(decode=False)
    if len(raw) > FIELD_LIMIT:
        raise _invalid(part.name or "form", "trường quá dài", "field too long")
    return raw.decode("utf-8", errors="replace")


async def receive(request: web.Request) -> Upload:
    """receive: read a multipart upload into the content store (413, 415, 400 when no file)."""
    limit = request.app[CONFIG].limits.max_upload_bytes
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported-media-type",
                       "Cần gửi biểu mẫu multipart/form-data có trường 'file'. / "
                       "Send multipart/form-data with a 'file' field.")
    if request.content_length is not None and request.content_length > limit + 1_048_576:
        raise too_large(limit)
    fields: dict[str, str] = {}
    stored: files.StoredFile | None = None
    filename = ""
    root = files.uploads_root(request.app[CONFIG])
    with malformed_body():
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and stored is None:
                filename = part.filename or ""
                try:
                    stored = await files.store(files.part_chunks(part), limit, root, accept=KINDS)
                except files.TooLarge:
                    raise too_large(limit) from None
                except files.Refused as exc:
                    raise refused(exc.mime) from None
            elif part.name in ("title", "description", "meeting_id", "kind"):
                fields[part.name] = await _text(part)
            else:
                await part.release()
    if stored is None:
        raise ApiError(400, "no-file", "Chưa chọn tệp (trường 'file'). / No file was sent (field 'file').")
    meeting_raw = fields.get("meeting_id", "").strip()
    try:
        meeting_id = check_id(int(meeting_raw), "meeting_id") if meeting_raw else None
    except ValueError:
        raise _invalid("meeting_id", "không hợp lệ", "not a number") from None
    return Upload(stored=stored, filename=filename, title=fields.get("title", "").strip(),
                  description=fields.get("description", "").strip(), meeting_id=meeting_id,
                  kind=fields.get("kind", "").strip())


def kind_for(mime: str, wanted: str = "") -> MaterialKind:
    """kind_for: the material kind of a sniffed type (`wanted` when the type allows it)."""
    allowed = KINDS.get(mime)
    if not allowed:
        raise refused(mime)
    if wanted:
        try:
            kind = MaterialKind(wanted)
        except ValueError:
            raise _invalid("kind", "loại học liệu không hợp lệ", "unknown kind") from None
        if kind not in allowed:
            raise _invalid("kind", "loại học liệu không khớp với nội dung tệp", "the kind does not match the file")
        return kind
    return allowed[0]


async def create(s: AsyncSession, request: web.Request | None, program_id: int, upload: Upload,
                 actor_id: int | None) -> Material:
    """create: add a material for a stored upload (audited)."""
    await check_program_meeting(s, program_id, upload.meeting_id)
    stored = upload.stored
    filename = clean_filename(upload.filename, stored.mime)
    title = upload.title or filename.rsplit(".", 1)[0]
    if len(title) > 300:
        raise _invalid("title", "tối đa 300 ký tự", "at most 300 characters")
    material = Material(program_id=program_id, meeting_id=upload.meeting_id, title=title,
                        description=upload.description[:5000], kind=kind_for(stored.mime, upload.kind),
                        filename=filename, mime=stored.mime, size=stored.size, sha256=stored.hash,
                        created_at=utcnow(), created_by=actor_id)
    s.add(material)
    await s.flush()
    audit.record(s, request, "material.upload", f"material:{material.id}", program_id=program_id,
                 filename=filename, size=stored.size, mime=stored.mime, sha256=stored.hash)
    return material


async def update(s: AsyncSession, request: web.Request | None, material: Material, data: MaterialPatch) -> Material:
    """update: change a material's title, description or meeting (audited)."""
    changes = data.model_dump(exclude_unset=True)
    if "meeting_id" in changes:
        await check_program_meeting(s, material.program_id, changes["meeting_id"])
    if changes.get("title") == "":
        raise _invalid("title", "hãy nhập tên", "enter a title")
    for name, value in changes.items():
        if value is not None or name == "meeting_id":
            setattr(material, name, value)
    audit.record(s, request, "material.update", f"material:{material.id}", fields=sorted(changes))
    return material


async def delete(s: AsyncSession, request: web.Request | None, material: Material) -> None:
    """delete: remove a material (audited). The stored file stays: other rows may share its hash."""
    audit.record(s, request, "material.delete", f"material:{material.id}", program_id=material.program_id,
                 filename=material.filename, sha256=material.sha256)
    await s.delete(material)


async def get(s: AsyncSession, material_id: int) -> Material:
    """get: one material, or 404."""
    material = await s.get(Material, material_id)
    if material is None:
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
    return material


async def list_for(s: AsyncSession, program_id: int, meeting_id: int | None = None,
                   kind: MaterialKind | None = None) -> list[Material]:
    """list_for: a program's materials (of one meeting, of one kind), newest first."""
    q = select(Material).where(Material.program_id == program_id)
    if meeting_id is not None:
        q = q.where(Material.meeting_id == meeting_id)
    if kind is not None:
        q = q.where(Material.kind == kind)
    return list((await s.scalars(q.order_by(Material.created_at.desc(), Material.id.desc()))).all())


def is_inline(mime: str) -> bool:
    """is_inline: browsers show this type themselves (PDF, video, audio, images)."""
    return mime.startswith(INLINE_PREFIXES)


def disposition(material: Material, download: bool) -> str:
    """disposition: Content-Disposition with an ASCII fallback and the UTF-8 file name (RFC 6266)."""
    mode = "attachment" if download or not is_inline(material.mime) else "inline"
    ascii_name = unicodedata.normalize("NFKD", material.filename).encode("ascii", "ignore").decode() or "file"
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", ascii_name)
    return f"{mode}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(material.filename)}"


def file_response(request: web.Request, material: Material, download: bool = False) -> web.FileResponse:
    """file_response: the stored file (Range-capable) with its sniffed type and file name."""
    path = files.path_of(files.uploads_root(request.app[CONFIG]), material.sha256)
    if not path.is_file():
        raise ApiError(410, "gone", "Tệp không còn trên máy chủ. / The file is no longer on the server.")
    return web.FileResponse(path, headers={
        "Content-Type": material.mime,
        "Content-Disposition": disposition(material, download),
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
    })
