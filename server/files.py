"""server.files: uploaded files, typed by their content and stored once per content hash.

- `sniff(first_bytes)` names a file's type from its magic bytes (never from its name): PDF, ZIP (and the
  OOXML/ODF documents inside one are told apart by `refine`), legacy Office (OLE2), MP4/QuickTime `ftyp`,
  WebM/Matroska EBML, MP3, PNG, JPEG, GIF, and executables (ELF, PE "MZ", Mach-O, scripts) so that they
  can be refused.
- `store(chunks, limit, root)` streams an upload to a temporary file while hashing it (SHA-256), stops
  with `TooLarge` past `limit` bytes, names its type, and renames it to `root/<aa>/<hash>`; an equal
  file already there is kept (deduplication) and the temporary one dropped. Nothing is held in memory
  beyond one buffer.
- `path_of(root, hash)` is where a stored file lives; `uploads_root(config)` is `data_dir/uploads`.

Callers decide which types they accept (`ACCEPTED` lists the ones materials take) and map `TooLarge` and
refused types to 413 and 415.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader

from server.config import Config

SNIFF_BYTES = 4096
BUFFER_BYTES = 1 << 20
OCTET = "application/octet-stream"
ZIP = "application/zip"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"
ODP = "application/vnd.oasis.opendocument.presentation"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
OLE2 = "application/x-ole-storage"
EXECUTABLES = frozenset({"application/x-executable", "application/x-msdownload", "application/x-mach-binary",
                         "text/x-shellscript"})

# Types materials accept, with the extension used for downloads.
ACCEPTED: dict[str, str] = {
    "application/pdf": "pdf", DOCX: "docx", PPTX: "pptx", XLSX: "xlsx", ODT: "odt", ODP: "odp", ODS: "ods",
    OLE2: "doc", ZIP: "zip", "video/mp4": "mp4", "video/webm": "webm", "audio/mp4": "m4a",
    "audio/mpeg": "mp3", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif",
}


@dataclass(frozen=True)
class StoredFile:
    """StoredFile: a file in the content store: SHA-256 hex, size in bytes, sniffed type, path on disk."""

    hash: str
    size: int
    mime: str
    path: Path


class Refused(Exception):
    """Refused: the upload's sniffed type is not among the accepted ones (nothing was kept)."""

    def __init__(self, mime: str) -> None:
        super().__init__(f"type {mime} not accepted")
        self.mime = mime


class TooLarge(Exception):
    """TooLarge: the upload went past `limit` bytes (nothing was kept)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"upload larger than {limit} bytes")
        self.limit = limit


def sniff(first: bytes) -> str:
    """sniff: the MIME type named by a file's first bytes (OCTET when unknown)."""
    if first.startswith(b"%PDF-"):
        return "application/pdf"
    if first.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _odf(first) or ZIP
    if first.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return OLE2
    if len(first) >= 12 and first[4:8] == b"ftyp":
        brand = first[8:12]
        if brand.startswith(b"M4A"):
            return "audio/mp4"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    if first.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in first[:64] else "video/x-matroska"
    if first.startswith(b"ID3") or first[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if first.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if first.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if first.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if first.startswith(b"\x7fELF"):
        return "application/x-executable"
    if first.startswith(b"MZ"):
        return "application/x-msdownload"
    if first[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
                     b"\xca\xfe\xba\xbe"):
        return "application/x-mach-binary"
    if first.startswith(b"#!"):
        return "text/x-shellscript"
    return OCTET


def _odf(first: bytes) -> str | None:
    # ODF stores an uncompressed "mimetype" entry first: its content follows the 30-byte header and name.
    if first[30:38] == b"mimetype":
        for mime in (ODT, ODP, ODS):
            if mime.encode() in first[38:38 + 80]:
                return mime
    return None


def refine(path: Path, mime: str) -> str:
    """refine: a ZIP's real type from its member names (Word, PowerPoint, Excel or a plain ZIP package)."""
    if mime != ZIP:
        return mime
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return OCTET
    if "[Content_Types].xml" in names:
        if any(n.startswith("word/") for n in names):
            return DOCX
        if any(n.startswith("ppt/") for n in names):
            return PPTX
        if any(n.startswith("xl/") for n in names):
            return XLSX
    return ZIP


def uploads_root(config: Config) -> Path:
    """uploads_root: the content store, `data_dir/uploads`."""
    return config.data_path / "uploads"


def path_of(root: Path, digest: str) -> Path:
    """path_of: where the file with SHA-256 `digest` lives: `root/<first two hex digits>/<digest>`."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("not a SHA-256 hex digest")
    return root / digest[:2] / digest


def _open_temp(root: Path) -> tuple[Path, BinaryIO]:
    tmp_dir = root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"upload-{secrets.token_hex(8)}"
    return path, path.open("xb")


def _finish(tmp: Path, root: Path, digest: str, mime: str, accept: Collection[str] | None) -> tuple[Path, str]:
    mime = refine(tmp, mime)
    if accept is not None and mime not in accept:
        raise Refused(mime)
    final = path_of(root, digest)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        tmp.unlink()
    else:
        os.replace(tmp, final)
    return final, mime


def _check(mime: str, accept: Collection[str]) -> None:
    # A ZIP may still turn out to be an accepted OOXML document: refine decides at the end.
    if mime not in accept and not (mime == ZIP and any(a in accept for a in (DOCX, PPTX, XLSX))):
        raise Refused(mime)


def _write(fh: BinaryIO, data: bytes) -> None:
    fh.write(data)


async def store(chunks: AsyncIterable[bytes], limit: int, root: Path,
                accept: Collection[str] | None = None) -> StoredFile:
    """store: stream `chunks` into the content store under `root` (TooLarge past `limit` bytes).

    The file is written to `root/tmp` while hashed, typed from its first bytes (and its ZIP members),
    then renamed to `root/<aa>/<hash>`; when that file exists already the copy is dropped. With
    `accept`, a type not in it raises `Refused` as soon as the first bytes tell (nothing is kept).
    """
    tmp, fh = await asyncio.to_thread(_open_temp, root)
    digest = hashlib.sha256()
    size = 0
    head = bytearray()
    buf = bytearray()
    done = False
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise TooLarge(limit)
            digest.update(chunk)
            if len(head) < SNIFF_BYTES:
                before = len(head)
                head += chunk[:SNIFF_BYTES - len(head)]
                if accept is not None and before < 64 <= len(head):
                    _check(sniff(bytes(head)), accept)
            buf += chunk
            if len(buf) >= BUFFER_BYTES:
                await asyncio.to_thread(_write, fh, bytes(buf))
                buf.clear()
        if buf:
            await asyncio.to_thread(_write, fh, bytes(buf))
        await asyncio.to_thread(fh.close)
        if accept is not None:
            _check(sniff(bytes(head)), accept)
        hexdigest = digest.hexdigest()
        final, mime = await asyncio.to_thread(_finish, tmp, root, hexdigest, sniff(bytes(head)), accept)
        done = True
        return StoredFile(hash=hexdigest, size=size, mime=mime, path=final)
    finally:
        if not done:
            fh.close()
            tmp.unlink(missing_ok=True)


async def part_chunks(part: BodyPartReader, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """part_chunks: the chunks of an aiohttp multipart part, for `store`."""
    while chunk := await part.read_chunk(size):
        yield bytes(chunk)
