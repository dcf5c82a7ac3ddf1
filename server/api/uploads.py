"""server.api.uploads: CSV uploads for the importers (units, classrooms, a term's meetings), API and pages alike.

An upload is a CSV body (``text/csv`` and friends) or a multipart form with a ``file`` part, at most
`IMPORT_MAX_BYTES` (413 beyond; 400 for a multipart body that cannot be read, e.g. without a boundary). Row
errors answer 422 ``{"error": {...}, "errors": [{"row", "message", "text"}]}``.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from server.errors import ApiError
from server.i18n import language
from server.inputs import malformed_body
from server.people.importer import ImportFailed

IMPORT_MAX_BYTES = 5 * 1024 * 1024
CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv", "application/vnd.ms-excel",
                       "application/octet-stream"})


def _too_large() -> ApiError:
    mb = IMPORT_MAX_BYTES // (1024 * 1024)
    return ApiError(413, "too-large", f"Tệp quá lớn (tối đa {mb} MB). / The file is too large (at most {mb} MB).")


async def read_upload(request: web.Request, limit: int = IMPORT_MAX_BYTES) -> tuple[bytes, str]:
    """read_upload: the CSV bytes and file name of a text/csv body or a multipart `file` part (413 over limit)."""
    if request.content_length is not None and request.content_length > limit + 65_536:
        raise _too_large()
    buf = bytearray()
    if request.content_type == "multipart/form-data":
        with malformed_body():
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if isinstance(part, BodyPartReader) and part.name == "file":
                    while chunk := await part.read_chunk(65_536):
                        buf += chunk
                        if len(buf) > limit:
                            raise _too_large()
                    return bytes(buf), part.filename or ""
                await part.release()
        raise ApiError(400, "bad-request", "Thiếu tệp (trường 'file'). / No file (field 'file').")
    if request.content_type not in CSV_TYPES:
        raise ApiError(415, "unsupported-media-type",
                       "Cần gửi tệp CSV (text/csv hoặc multipart/form-data). / Send text/csv or multipart/form-data.")
    async for chunk in request.content.iter_chunked(65_536):
        buf += chunk
        if len(buf) > limit:
            raise _too_large()
    return bytes(buf), request.headers.get("X-File-Name", "")[:120]


def import_error_response(request: web.Request, exc: ImportFailed) -> web.Response:
    """import_error_response: 422 with every row error ({row, message, text})."""
    lang = language(request)
    n = len(exc.errors)
    body = {
        "error": {"code": "import-invalid",
                  "message": f"Tệp có {n} lỗi, không ghi gì. / The file has {n} error(s); nothing was written."},
        "errors": [{"row": e.row, "message": e.message, "text": e.text(lang)} for e in exc.errors],
    }
    return web.json_response(body, status=422)
