"""server.learning.scorm: SCORM 1.2 / 2004 manifests read (items, launch files, mastery and passing scores), ZIPs
that are not SCORM kept as downloads, unsafe packages refused before anything is written, extraction all or
nothing."""

from __future__ import annotations

import os
import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest

from server.config import LearningSection
from server.learning import scorm
from tests.server.scorm_helpers import (
    MANIFEST_12,
    bomb_package,
    build_zip,
    scorm12,
    scorm2004,
    symlink_package,
    with_entry,
)

LIMITS = LearningSection()


def write(tmp_path: Path, data: bytes, name: str = "goi.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_scorm_12_package_gives_its_items_launch_files_and_mastery_score(tmp_path: Path) -> None:
    m = scorm.inspect(write(tmp_path, scorm12(scos=2, mastery=75)), LIMITS)
    assert (m.version, m.title) == ("1.2", "Bài giảng Toán 6")
    assert [(s.identifier, s.title, s.href, s.sco, s.mastery_score) for s in m.scos] == [
        ("ITEM-1", "Bài 1: Số tự nhiên", "sco-1/index.html", True, 75.0),
        ("ITEM-2", "Bài 2: Số tự nhiên", "sco-2/index.html", True, 75.0)]
    assert m.files == 3 and m.size > 1000


def test_a_scorm_2004_package_gives_its_scaled_passing_score(tmp_path: Path) -> None:
    m = scorm.inspect(write(tmp_path, scorm2004(scos=2, passing=0.6)), LIMITS)
    assert m.version == "2004"
    assert [(s.identifier, s.href, s.scaled_passing_score, s.mastery_score) for s in m.scos] == [
        ("ITEM-1", "phan-1.html", 0.6, None), ("ITEM-2", "phan-2.html", 0.6, None)]


def test_xml_base_parameters_nested_items_and_assets(tmp_path: Path) -> None:
    items = ('<item identifier="CH1"><title>Chương 1</title>'
             '<item identifier="A" identifierref="R1" parameters="?trang=2"><title>Bài A</title></item>'
             '<item identifier="B" identifierref="R2"><title>Tài liệu</title></item></item>')
    resources = ('<resource identifier="R1" adlcp:scormtype="sco" xml:base="noi dung/" href="a.html"/>'
                 '<resource identifier="R2" adlcp:scormtype="asset" href="b.html"/>')
    data = build_zip({"imsmanifest.xml": MANIFEST_12.format(items=items, resources=resources),
                      "noi dung/a.html": "<p>a</p>", "b.html": "<p>b</p>"})
    m = scorm.inspect(write(tmp_path, data), LIMITS)
    assert [(s.identifier, s.href, s.sco) for s in m.scos] == [("A", "noi dung/a.html?trang=2", True),
                                                                ("B", "b.html", False)]


@pytest.mark.parametrize(("files", "reason"), [
    ({"bai-giang.pdf": b"%PDF-1.4"}, "Không có imsmanifest.xml"),
    ({"imsmanifest.xml": MANIFEST_12.format(
        items='<item identifier="I" identifierref="R"><title>T</title></item>',
        resources='<resource identifier="R" adlcp:scormtype="asset" href="a.html"/>'), "a.html": "a"},
     "không có bài học SCO nào"),
    ({"imsmanifest.xml": "<manifest><organizations/><resources/></manifest>"}, "không ghi phiên bản SCORM"),
])
def test_a_zip_that_is_not_scorm_stays_a_download_with_the_reason(
        tmp_path: Path, files: dict[str, str | bytes], reason: str) -> None:
    with pytest.raises(scorm.NotScorm) as caught:
        scorm.inspect(write(tmp_path, build_zip(files)), LIMITS)
    assert reason in caught.value.vi and caught.value.en


def _lying_sizes(data: bytes, name: bytes, declared: int) -> bytes:
    """_lying_sizes: `data` with the entry `name`'s uncompressed size rewritten to `declared` in both headers."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04" + b"")
    while local != -1:
        n = struct.unpack_from("<H", out, local + 26)[0]
        if out[local + 30:local + 30 + n] == name:
            struct.pack_into("<I", out, local + 22, declared)
        local = out.find(b"PK\x03\x04", local + 4)
    central = out.find(b"PK\x01\x02")
    while central != -1:
        n = struct.unpack_from("<H", out, central + 28)[0]
        if out[central + 46:central + 46 + n] == name:
            struct.pack_into("<I", out, central + 24, declared)
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: with_entry(scorm12(), "../../etc/cron.d/x"), "Tên tệp không an toàn"),
    (lambda: with_entry(scorm12(), "/etc/passwd"), "Tên tệp không an toàn"),
    (lambda: with_entry(scorm12(), "C:/Windows/win.ini"), "Tên tệp không an toàn"),
    (lambda: with_entry(scorm12(), "sco-1\\..\\..\\x"), "Tên tệp không an toàn"),
    (symlink_package, "liên kết tượng trưng"),
    (lambda: with_entry(scorm12(), "dev", mode=stat.S_IFCHR | 0o600), "tệp đặc biệt"),
    (bomb_package, "nén quá mức"),
    (lambda: build_zip({"imsmanifest.xml": "<manifest><unclosed>", "a.html": "a"}), "không phải XML hợp lệ"),
    (lambda: build_zip({"imsmanifest.xml": '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]><manifest/>'}),
     "DOCTYPE"),
    (lambda: build_zip({"imsmanifest.xml": MANIFEST_12.format(
        items='<item identifier="I" identifierref="R"><title>T</title></item>',
        resources='<resource identifier="R" adlcp:scormtype="sco" href="thieu.html"/>')}), "không có trong gói"),
    (lambda: build_zip({"imsmanifest.xml": MANIFEST_12.format(
        items='<item identifier="I" identifierref="R"><title>T</title></item>',
        resources='<resource identifier="R" adlcp:scormtype="sco" href="https://evil.example/x.html"/>')}),
     "nằm ngoài gói"),
    (lambda: build_zip({"imsmanifest.xml": MANIFEST_12.format(
        items='<item identifier="I" identifierref="R"><title>T</title><adlcp:masteryscore>150</adlcp:masteryscore>'
              '</item>', resources='<resource identifier="R" adlcp:scormtype="sco" href="a.html"/>'),
        "a.html": "a"}), "masteryscore"),
])
def test_unsafe_or_broken_packages_are_refused_with_their_reason(tmp_path: Path, make: object, reason: str) -> None:
    with pytest.raises(scorm.BadPackage) as caught:
        scorm.inspect(write(tmp_path, make()), LIMITS)  # type: ignore[operator]
    assert reason in caught.value.vi, caught.value.vi
    assert caught.value.en


def test_file_count_and_total_size_limits_come_from_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, scorm12(scos=3))
    with pytest.raises(scorm.BadPackage, match="vượt giới hạn 3 tệp"):
        scorm.inspect(path, LearningSection(package_max_files=3))
    with pytest.raises(scorm.BadPackage, match="quá lớn"):
        scorm.inspect(path, LearningSection(package_max_bytes=2048))
    assert len(scorm.inspect(path, LearningSection(package_max_files=4)).scos) == 3


def test_extraction_is_all_or_nothing_and_checks_actual_sizes(tmp_path: Path) -> None:
    root = tmp_path / "packages"
    good = write(tmp_path, scorm12(scos=2))
    target = scorm.extract(good, root, "a" * 64, LIMITS)
    assert (target / "sco-2" / "index.html").read_text().startswith("<!doctype html>")
    assert (target / "imsmanifest.xml").is_file()
    assert scorm.extract(good, root, "a" * 64, LIMITS) == target  # already there: kept
    # an entry that declares 10 bytes but unpacks to 2 MB (its header lies): stopped, nothing left behind
    lying = _lying_sizes(with_entry(scorm12(), "sco-1/big.bin", b"\1" * (2 << 20)), b"sco-1/big.bin", 10)
    assert zipfile.ZipFile(write(tmp_path, lying, "lying.zip")).getinfo("sco-1/big.bin").file_size == 10
    with pytest.raises(scorm.BadPackage):
        scorm.extract(tmp_path / "lying.zip", root, "b" * 64, LIMITS)
    assert sorted(p.name for p in root.iterdir()) == ["a" * 64]


def test_stale_extraction_directories_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "packages"
    (root / ".tmp-old" / "sco").mkdir(parents=True)
    (root / ".tmp-new").mkdir()
    (root / ("c" * 64)).mkdir()
    old = time.time() - 7200
    os.utime(root / ".tmp-old", (old, old))
    assert scorm.remove_stale_temps(root) == 1
    assert sorted(p.name for p in root.iterdir()) == [".tmp-new", "c" * 64]
    assert scorm.remove_stale_temps(tmp_path / "none") == 0
