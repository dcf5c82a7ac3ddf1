"""Tests of the words users read against docs/glossary.md: its "Not" variants and the old tone-mark placement
appear nowhere in the templates, browser scripts, catalogues or the server's Python strings."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "docs" / "glossary.md"
LETTERS = "a-zA-Zàáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợùúủũụưứừửữựỳýỷỹỵ" \
          "ÀÁẢÃẠĂẮẰẲẴẶÂẤẦẨẪẬĐÈÉẺẼẸÊẾỀỂỄỆÌÍỈĨỊÒÓỎÕỌÔỐỒỔỖỘƠỚỜỞỠỢÙÚỦŨỤƯỨỪỬỮỰỲÝỶỸỴ"
OLD_TONE = re.compile(rf"(?<![{LETTERS}])[{LETTERS}]*?(?<![qQ])(?:[óòỏõọÓÒỎÕỌ][aAeE]|[úùủũụÚÙỦŨỤ][yY])(?![{LETTERS}])")
"""OLD_TONE: a word ending in oa, oe or uy with the tone on the first vowel ("khóa", "hủy"; not "quý")."""


def forbidden() -> dict[str, str]:
    """forbidden: every "Not" variant of the glossary's tables → the word to use."""
    found: dict[str, str] = {}
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[-1]) <= set("-") or cells[-1] == "Not":
            continue
        use = cells[-2]
        for variant in cells[-1].split(","):
            if variant.strip():
                found[variant.strip().lower()] = use
    return found


def scanned() -> list[Path]:
    """scanned: the files whose words users read."""
    files = list((ROOT / "web" / "templates").glob("*.html")) + list((ROOT / "web" / "static").glob("*.js"))
    files += list((ROOT / "server" / "locale").rglob("*.po"))
    files += [p for p in (ROOT / "server").rglob("*.py") if "data" not in p.relative_to(ROOT).parts]
    return sorted(files)


def violations(text: str, variants: dict[str, str]) -> list[str]:
    """violations: each forbidden word of `text`, with what to write instead."""
    found = [f"{m.group(0)!r} (write the tone on the main vowel)" for m in OLD_TONE.finditer(text)]
    for variant, use in variants.items():
        pattern = rf"(?<![{LETTERS}]){re.escape(variant)}(?![{LETTERS}])"
        found += [f"{m.group(0)!r} (use {use!r})" for m in re.finditer(pattern, text, re.IGNORECASE)]
    return found


def test_the_glossary_lists_its_variants() -> None:
    variants = forbidden()
    assert variants["buổi họp"] == "buổi tập huấn" and variants["micrô"] == "micro" and variants["khóa"] == "khoá"


def test_the_checker_finds_what_the_glossary_forbids() -> None:
    variants = forbidden()
    assert violations("Khóa phòng · Hủy · Micrô · Buổi họp mới", variants)
    assert len(violations("Khóa phòng", variants)) == 2  # the tone rule and the table both name it
    assert not violations("Khoá phòng · Huỷ · Micro · Buổi tập huấn mới · quý · toán · hoàn thành · của", variants)


def test_no_forbidden_word_in_what_users_read() -> None:
    variants = forbidden()
    problems = [f"{path.relative_to(ROOT)}:{n}: {v}" for path in scanned()
                for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                for v in violations(line, variants)]
    assert not problems, "words against docs/glossary.md:\n" + "\n".join(problems)
