"""server.learning.scorm: recognise an uploaded ZIP as a SCORM 1.2 or 2004 package and extract it safely.

- `inspect(zip_path, limits)` reads the ZIP's central directory and its `imsmanifest.xml` (at the root):
  the version (metadata/schemaversion, else the adlcp namespace), the default organisation's title and
  its items in order, each launchable item's resource (href with xml:base and the item's parameters), the
  mastery score (1.2 `adlcp:masteryscore`, 0–100) or the scaled passing score (2004: the primary objective's
  `minNormalizedMeasure` when satisfied by measure), the completion threshold and launch data. A ZIP
  without a manifest, or whose manifest names no SCO, raises `NotScorm` (the material stays a download,
  with the reason); a ZIP with a manifest that is broken or unsafe raises `BadPackage` (the upload is
  refused with the reason).
- Safety, checked on the central directory before anything is written: no absolute path, drive letter,
  `..` or NUL in a name; no symbolic link or special file in the entries' external attributes; no encrypted
  entry; at most `package_max_files` entries; declared sizes at most `package_max_bytes` in total and no
  entry compressed more than `package_max_ratio` times (zip bombs). While extracting, actual sizes are
  counted too (a header that lies stops the extraction).
- `extract(zip_path, root, sha256, limits)` unpacks into a temporary directory beside the target and renames
  it to `root/<sha256>` when complete: a failure leaves nothing half-written; an existing target is kept.
  `remove_stale_temps` clears what a process killed during an extraction left (at start-up).
- The manifest is parsed with the standard library's parser, hardened: a document type declaration
  (entities, external references) is refused before parsing, and the manifest is at most 4 MB.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

from server.config import LearningSection

MANIFEST = "imsmanifest.xml"
MANIFEST_MAX_BYTES = 4 * 1024 * 1024
BIG_ENTRY = 1 << 20  # the ratio check applies to entries that unpack to more than this
CHUNK = 1 << 16


class NotScorm(Exception):
    """NotScorm: the ZIP is not a SCORM package (it stays a download); `vi` and `en` say why."""

    def __init__(self, vi: str, en: str) -> None:
        super().__init__(f"{vi} / {en}")
        self.vi, self.en = vi, en


class BadPackage(Exception):
    """BadPackage: a SCORM package that is broken or unsafe (the upload is refused); `vi` and `en` say why."""

    def __init__(self, vi: str, en: str) -> None:
        super().__init__(f"{vi} / {en}")
        self.vi, self.en = vi, en


@dataclass(frozen=True)
class Sco:
    """Sco: a launchable item: its identifier, title, launch path (package-relative, with the item's parameters),
    whether it talks to the runtime (SCO) or is a plain asset, and what the LMS hands it at launch."""

    identifier: str
    title: str
    href: str
    sco: bool = True
    mastery_score: float | None = None
    scaled_passing_score: float | None = None
    completion_threshold: float | None = None
    launch_data: str = ""


@dataclass(frozen=True)
class Manifest:
    """Manifest: a SCORM package's version ("1.2" or "2004"), title and launchable items in order."""

    version: str
    title: str
    scos: list[Sco] = field(default_factory=list)
    files: int = 0
    size: int = 0

    def sco_dicts(self) -> list[dict[str, Any]]:
        """Manifest.sco_dicts: the items as JSON-ready dicts (stored in ScormPackage.scos)."""
        return [asdict(s) for s in self.scos]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _attr(el: ElementTree.Element, name: str) -> str:
    """_attr: an attribute by local name, any namespace, case-insensitive (scormtype / scormType)."""
    for key, value in el.attrib.items():
        if _local(key).lower() == name.lower():
            return value.strip()
    return ""


def _child(el: ElementTree.Element, name: str) -> ElementTree.Element | None:
    for c in el:
        if _local(c.tag).lower() == name.lower():
            return c
    return None


def _children(el: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [c for c in el if _local(c.tag).lower() == name.lower()]


def _text(el: ElementTree.Element | None) -> str:
    return " ".join((el.text or "").split()) if el is not None else ""


def _float(text: str, low: float, high: float, what: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadPackage(f"imsmanifest.xml: {what} không phải là số ({text[:40]!r})",
                         f"imsmanifest.xml: {what} is not a number ({text[:40]!r})") from None
    if not low <= value <= high:
        raise BadPackage(f"imsmanifest.xml: {what} phải trong khoảng {low:g}…{high:g}",
                         f"imsmanifest.xml: {what} must be within {low:g}…{high:g}")
    return value


def check_names(infos: list[zipfile.ZipInfo], limits: LearningSection) -> int:
    """check_names: refuse unsafe entries and declared sizes past the limits (BadPackage); the total declared size."""
    if len(infos) > limits.package_max_files:
        raise BadPackage(f"Gói có {len(infos)} tệp, vượt giới hạn {limits.package_max_files} tệp",
                         f"The package has {len(infos)} files, more than the limit of {limits.package_max_files}")
    total = 0
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        shown = name[:80]
        parts = name.replace("\\", "/").split("/")
        if "\x00" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise BadPackage(f"Tên tệp không an toàn trong gói: {shown!r} (đường dẫn tuyệt đối hoặc '..')",
                             f"Unsafe file name in the package: {shown!r} (absolute path or '..')")
        mode = info.external_attr >> 16
        if info.create_system == 3 and mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = "liên kết tượng trưng" if stat.S_ISLNK(mode) else "tệp đặc biệt"
            kind_en = "a symbolic link" if stat.S_ISLNK(mode) else "a special file"
            raise BadPackage(f"Gói chứa {kind}: {shown!r}", f"The package holds {kind_en}: {shown!r}")
        if info.flag_bits & 0x1:
            raise BadPackage(f"Gói chứa tệp có mật khẩu: {shown!r}", f"The package holds an encrypted file: {shown!r}")
        key = name.replace("\\", "/").rstrip("/").lower()
        if key in seen and not info.is_dir():
            raise BadPackage(f"Tên tệp lặp lại trong gói: {shown!r}",
                             f"A file name is repeated in the package: {shown!r}")
        seen.add(key)
        if info.file_size > BIG_ENTRY and info.file_size > limits.package_max_ratio * max(info.compress_size, 1):
            raise BadPackage(f"Tệp {shown!r} nén quá mức (nghi là bom nén)",
                             f"The file {shown!r} is compressed beyond reason (a zip bomb?)")
        total += info.file_size
        if total > limits.package_max_bytes:
            raise BadPackage(f"Gói giải nén ra quá lớn: tối đa {limits.package_max_bytes} byte",
                             f"The package unpacks to too much: at most {limits.package_max_bytes} bytes")
    return total


def _parse(data: bytes) -> ElementTree.Element:
    head = data[:65536].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise BadPackage("imsmanifest.xml có khai báo DOCTYPE/ENTITY (không được phép)",
                         "imsmanifest.xml declares a DOCTYPE or ENTITY (not allowed)")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise BadPackage(f"imsmanifest.xml không phải XML hợp lệ ({exc})",
                         f"imsmanifest.xml is not well-formed XML ({exc})") from None


def _version(root: ElementTree.Element) -> str:
    meta = _child(root, "metadata")
    schema = _text(_child(meta, "schemaversion")) if meta is not None else ""
    if schema == "1.2":
        return "1.2"
    if schema.startswith(("CAM 1.3", "2004")):
        return "2004"
    namespaces = {_ns(el.tag) for el in root.iter()} | {_ns(k) for el in root.iter() for k in el.attrib}
    if any("adlcp_rootv1p2" in n for n in namespaces):
        return "1.2"
    if any("adlcp_v1p3" in n for n in namespaces):
        return "2004"
    raise NotScorm("imsmanifest.xml không ghi phiên bản SCORM (1.2 hoặc 2004)",
                   "imsmanifest.xml names no SCORM version (1.2 or 2004)")


def _passing(item: ElementTree.Element) -> float | None:
    seq = _child(item, "sequencing")
    objectives = _child(seq, "objectives") if seq is not None else None
    primary = _child(objectives, "primaryObjective") if objectives is not None else None
    if primary is None or _attr(primary, "satisfiedByMeasure").lower() != "true":
        return None
    return _float(_text(_child(primary, "minNormalizedMeasure")) or "1.0", -1.0, 1.0, "minNormalizedMeasure")


def _threshold(item: ElementTree.Element) -> float | None:
    el = _child(item, "completionThreshold")
    if el is None:
        return None
    value = _attr(el, "minProgressMeasure") or _text(el)
    return _float(value, 0.0, 1.0, "completionThreshold")


def _launch_path(href: str) -> str:
    path = unquote(href.split("#", 1)[0].split("?", 1)[0])
    return str(PurePosixPath(path))


def parse_manifest(data: bytes, names: set[str]) -> tuple[str, str, list[Sco]]:
    """parse_manifest: (version, title, items) of a manifest whose package holds the files `names`."""
    root = _parse(data)
    if _local(root.tag) != "manifest":
        raise BadPackage("imsmanifest.xml không có phần tử <manifest>", "imsmanifest.xml has no <manifest> element")
    version = _version(root)
    resources_el = _child(root, "resources")
    base_all = _attr(resources_el, "base") if resources_el is not None else ""
    resources = {_attr(r, "identifier"): r for r in (_children(resources_el, "resource") if resources_el is not None
                                                     else [])}
    orgs_el = _child(root, "organizations")
    orgs = _children(orgs_el, "organization") if orgs_el is not None else []
    default = _attr(orgs_el, "default") if orgs_el is not None else ""
    org = next((o for o in orgs if _attr(o, "identifier") == default), orgs[0] if orgs else None)
    scos: list[Sco] = []

    def walk(el: ElementTree.Element) -> None:
        for item in _children(el, "item"):
            ref = _attr(item, "identifierref")
            if ref:
                res = resources.get(ref)
                if res is None:
                    raise BadPackage(f"imsmanifest.xml: mục {_attr(item, 'identifier')!r} trỏ tới tài nguyên "
                                     f"{ref!r} không có", f"imsmanifest.xml: item {_attr(item, 'identifier')!r} "
                                     f"refers to a missing resource {ref!r}")
                href = _attr(res, "href")
                if not href:
                    raise BadPackage(f"imsmanifest.xml: tài nguyên {ref!r} không có tệp khởi chạy (href)",
                                     f"imsmanifest.xml: resource {ref!r} has no launch file (href)")
                if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", href) or href.startswith("//"):
                    raise BadPackage(f"imsmanifest.xml: tệp khởi chạy {href[:80]!r} nằm ngoài gói",
                                     f"imsmanifest.xml: the launch file {href[:80]!r} is outside the package")
                full = base_all + _attr(res, "base") + href
                path = _launch_path(full)
                if path.startswith(("/", "..")) or "/../" in f"/{path}/" or path not in names:
                    raise BadPackage(f"imsmanifest.xml: tệp khởi chạy {path[:80]!r} không có trong gói",
                                     f"imsmanifest.xml: the launch file {path[:80]!r} is not in the package")
                params = _attr(item, "parameters")
                if params:
                    params = params.lstrip("?&#")
                    full += ("&" if "?" in full else "?") + params
                is_sco = _attr(res, "scormtype").lower() == "sco"
                mastery = _float(_text(_child(item, "masteryscore")), 0, 100, "masteryscore")
                scos.append(Sco(identifier=_attr(item, "identifier")[:200] or ref[:200],
                                title=_text(_child(item, "title"))[:300] or ref[:300], href=full, sco=is_sco,
                                mastery_score=mastery if version == "1.2" else None,
                                scaled_passing_score=_passing(item) if version == "2004" else None,
                                completion_threshold=_threshold(item) if version == "2004" else None,
                                launch_data=_text(_child(item, "dataFromLMS"))[:4096]))
            walk(item)

    if org is not None:
        walk(org)
    if not any(s.sco for s in scos):
        raise NotScorm("imsmanifest.xml không có bài học SCO nào", "imsmanifest.xml has no SCO")
    title = _text(_child(org, "title")) if org is not None else ""
    return version, title[:300], scos


def inspect(path: Path, limits: LearningSection) -> Manifest:
    """inspect: the Manifest of the ZIP at `path` (NotScorm: keep it as a download; BadPackage: refuse it)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename.replace("\\", "/") for i in infos if not i.is_dir()}
            if MANIFEST not in names:
                raise NotScorm("Không có imsmanifest.xml ở thư mục gốc của gói ZIP",
                               "No imsmanifest.xml at the root of the ZIP")
            total = check_names(infos, limits)
            info = zf.getinfo(MANIFEST)
            if info.file_size > MANIFEST_MAX_BYTES:
                raise BadPackage("imsmanifest.xml quá lớn (tối đa 4 MB)", "imsmanifest.xml is too large (at most 4 MB)")
            with zf.open(info) as fh:
                data = fh.read(MANIFEST_MAX_BYTES + 1)
    except zipfile.BadZipFile as exc:
        raise NotScorm(f"Tệp ZIP hỏng ({exc})", f"The ZIP file is damaged ({exc})") from None
    if len(data) > MANIFEST_MAX_BYTES:
        raise BadPackage("imsmanifest.xml quá lớn (tối đa 4 MB)", "imsmanifest.xml is too large (at most 4 MB)")
    version, title, scos = parse_manifest(data, names)
    return Manifest(version=version, title=title, scos=scos, files=len(names), size=total)


def package_dir(root: Path, sha256: str) -> Path:
    """package_dir: where the package with this content hash is extracted."""
    return root / sha256


def extract(path: Path, root: Path, sha256: str, limits: LearningSection) -> Path:
    """extract: unpack the checked ZIP at `path` to root/<sha256> (temporary directory, then rename; BadPackage
    when actual sizes go past the declared ones or the limits). An already extracted package is kept."""
    target = package_dir(root, sha256)
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            check_names(infos, limits)
            written = 0
            for info in infos:
                rel = PurePosixPath(info.filename.replace("\\", "/"))
                dest = tmp.joinpath(*rel.parts)
                if not dest.resolve().is_relative_to(tmp.resolve()):
                    raise BadPackage(f"Tên tệp không an toàn trong gói: {info.filename[:80]!r}",
                                     f"Unsafe file name in the package: {info.filename[:80]!r}")
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                size = 0
                with zf.open(info) as src, open(dest, "wb") as out:
                    while chunk := src.read(CHUNK):
                        size += len(chunk)
                        written += len(chunk)
                        if size > info.file_size or written > limits.package_max_bytes:
                            raise BadPackage(f"Tệp {info.filename[:80]!r} giải nén ra nhiều hơn kích thước đã khai",
                                             f"The file {info.filename[:80]!r} unpacks to more than it declares")
                        out.write(chunk)
                os.chmod(dest, 0o644)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another upload of the same file got there first
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadPackage(f"Không giải nén được gói ({exc})", f"The package cannot be unpacked ({exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def remove_stale_temps(root: Path, older_than: float = 3600.0) -> int:
    """remove_stale_temps: delete extraction directories left by a process that died (untouched for `older_than`
    seconds: another process may be extracting right now); how many were removed."""
    if not root.is_dir():
        return 0
    removed = 0
    limit = time.time() - older_than
    for tmp in root.glob(".tmp-*"):
        if tmp.is_dir() and tmp.stat().st_mtime < limit:
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed


def packages_root(data_path: Path) -> Path:
    """packages_root: <data_dir>/packages, where packages are extracted by content hash."""
    return data_path / "packages"
