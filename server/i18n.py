"""server.i18n: gettext catalogs (Babel .po files) for Vietnamese (default) and English.

Message ids in code and templates are English; `server/locale/vi/LC_MESSAGES/*.po` hold the Vietnamese
text (with diacritics) that users see first, one .po file per area (base, accounts, units, meetings, ...)
merged at start-up (no compiled .mo in the repository). Pick a language per request with `language(request)`: the `lang`
cookie, then the account's language, then config `language`.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path

from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from server.auth import IDENTITY
from server.config import CONFIG

LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("vi", "en")
LANG_COOKIE = "lang"


class Translations:
    """Translations: one gettext catalog per supported language."""

    def __init__(self, locale_dir: Path = LOCALE_DIR) -> None:
        self.catalogs: dict[str, gettext.NullTranslations] = {}
        for lang in LANGUAGES:
            merged: gettext.NullTranslations = gettext.NullTranslations()
            for po in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.po")):
                with po.open("rb") as fh:
                    catalog = read_po(fh, locale=lang)
                buf = io.BytesIO()
                write_mo(buf, catalog)
                buf.seek(0)
                part = gettext.GNUTranslations(buf)
                if isinstance(merged, gettext.GNUTranslations):
                    merged._catalog.update(part._catalog)  # type: ignore[attr-defined]
                else:
                    merged = part
            self.catalogs[lang] = merged

    def get(self, lang: str) -> gettext.NullTranslations:
        """Translations.get: the catalog for `lang` (English ids when unknown)."""
        return self.catalogs.get(lang, self.catalogs["en"])

    def gettext(self, lang: str, message: str) -> str:
        """Translations.gettext: translate one message id."""
        return self.get(lang).gettext(message)


def language(request: web.Request) -> str:
    """language: the language for this request (cookie, then account, then config)."""
    lang = request.cookies.get(LANG_COOKIE, "")
    if lang in LANGUAGES:
        return lang
    ident = request.get(IDENTITY)
    ident_lang = getattr(ident, "language", "")
    if ident_lang in LANGUAGES:
        return str(ident_lang)
    return request.app[CONFIG].language


def translator(request: web.Request) -> gettext.NullTranslations:
    """translator: the catalog for this request."""
    return request.app[I18N].get(language(request))


def _(request: web.Request, message: str) -> str:
    """_: translate `message` for this request."""
    return translator(request).gettext(message)


def localized(request: web.Request, message: str) -> str:
    """localized: the request's half of a "Tiếng Việt / English" message (an error's), or the message as it is."""
    vi, sep, en = message.partition(" / ")
    if not sep:
        return message
    return en if language(request) == "en" else vi

I18N: web.AppKey[Translations] = web.AppKey("i18n")
