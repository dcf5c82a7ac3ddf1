"""Tests of server.files: type sniffing by content, streamed storage by hash, limits and refusals."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server import files

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 200
PE = b"MZ\x90\x00\x03" + b"\x00" * 200


def zip_bytes(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(name, "<x/>")
    return buf.getvalue()


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.mark.parametrize(("first", "mime"), [
    (PDF, "application/pdf"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2", "video/mp4"),
    (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00", "audio/mp4"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", files.OLE2),
    (ELF, "application/x-executable"),
    (PE, "application/x-msdownload"),
    (b"#!/bin/sh\nrm -rf /\n", "text/x-shellscript"),
    (b"just some text", files.OCTET),
    (b"", files.OCTET),
])
def test_sniff(first: bytes, mime: str) -> None:
    assert files.sniff(first) == mime


@pytest.mark.parametrize(("names", "mime"), [
    (["[Content_Types].xml", "word/document.xml"], files.DOCX),
    (["[Content_Types].xml", "ppt/presentation.xml", "ppt/slides/slide1.xml"], files.PPTX),
    (["[Content_Types].xml", "xl/workbook.xml"], files.XLSX),
    (["imsmanifest.xml", "index.html"], files.ZIP),
    (["word/document.xml"], files.ZIP),  # no [Content_Types].xml: a plain zip
])
async def test_zip_documents_are_told_apart_by_their_members(tmp_path: Path, names: list[str], mime: str) -> None:
    data = zip_bytes(names)
    assert files.sniff(data[:64]) == files.ZIP
    stored = await files.store(chunks(data, 1000), 1 << 20, tmp_path)
    assert stored.mime == mime


async def test_store_hashes_dedups_and_names_the_path(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(PDF).hexdigest()
    first = await files.store(chunks(PDF), 1 << 20, tmp_path)
    assert first.hash == digest and first.size == len(PDF) and first.mime == "application/pdf"
    assert first.path == tmp_path / digest[:2] / digest and first.path.read_bytes() == PDF
    again = await files.store(chunks(PDF, 3), 1 << 20, tmp_path)
    assert again.path == first.path
    assert [p for p in (tmp_path / digest[:2]).iterdir()] == [first.path]
    assert entries(tmp_path / "tmp") == []  # no temporary file left


async def test_store_stops_past_the_limit_and_keeps_nothing(tmp_path: Path) -> None:
    with pytest.raises(files.TooLarge) as exc:
        await files.store(chunks(b"x" * 5000, 512), 4096, tmp_path)
    assert exc.value.limit == 4096
    assert entries(tmp_path / "tmp") == []
    assert entries(tmp_path) == ["tmp"]


async def test_store_refuses_unaccepted_types_early(tmp_path: Path) -> None:
    for data in (ELF, PE, b"plain text " * 20):
        with pytest.raises(files.Refused):
            await files.store(chunks(data, 100), 1 << 20, tmp_path, accept=files.ACCEPTED)
    assert entries(tmp_path) == ["tmp"]
    stored = await files.store(chunks(zip_bytes(["[Content_Types].xml", "ppt/p.xml"])), 1 << 20, tmp_path,
                               accept={files.PPTX})
    assert stored.mime == files.PPTX
    with pytest.raises(files.Refused):
        await files.store(chunks(zip_bytes(["[Content_Types].xml", "xl/w.xml"])), 1 << 20, tmp_path,
                          accept={files.PPTX})


def test_path_of_refuses_anything_but_a_digest(tmp_path: Path) -> None:
    for bad in ("../../etc/passwd", "ab", "g" * 64, "A" * 64):
        with pytest.raises(ValueError):
            files.path_of(tmp_path, bad)
