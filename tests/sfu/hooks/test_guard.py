"""Tests of sfu/hooks/guard.py: the pinned versions, the private names, the libsrtp check of the C path."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pylibsrtp
import pytest
from pylibsrtp._binding import lib as _lib

from sfu.hooks.guard import PINNED, PRIVATE_INSTANCE_NAMES, PRIVATE_NAMES, PYLIBSRTP_NAMES

pytestmark = pytest.mark.timeout(60)


def test_pinned_versions() -> None:
    """The installed aiortc, aioice and pylibsrtp are the versions the hooks were written for, pinned exactly in
    pyproject.toml."""
    with (Path(__file__).resolve().parents[3] / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    for package, version in PINNED.items():
        assert importlib.metadata.version(package) == version, package
        assert f"{package}=={version}" in dependencies, package


def test_private_class_attributes_exist() -> None:
    for cls, names in PRIVATE_NAMES.items():
        for name in names:
            assert hasattr(cls, name), f"{cls.__name__}.{name} is gone: update sfu/hooks/"


def test_pylibsrtp_internals_exist() -> None:
    session = pylibsrtp.Session()
    for name in PRIVATE_INSTANCE_NAMES["pylibsrtp.Session"]:
        assert hasattr(session, name), name
    for name in PYLIBSRTP_NAMES:
        assert hasattr(_lib, name), name


def test_libsrtp_is_what_the_compiled_path_calls() -> None:
    """check_libsrtp passes on the pinned pylibsrtp, and refuses a function of another type or one that does not
    give the known answer (the compiled path is then off, with a warning)."""
    from pylibsrtp._binding import ffi

    from sfu.consumer import CompiledSlot
    from sfu.hooks.guard import COMPILED_PATH, check_libsrtp, protect_address

    assert check_libsrtp() is None
    assert COMPILED_PATH == (CompiledSlot is not None)
    other_type = SimpleNamespace(**{name: getattr(_lib, name) for name in PYLIBSRTP_NAMES})
    other_type.srtp_protect = ffi.cast("int(*)(void *, void *, long *)", protect_address())
    problem = check_libsrtp(lib=other_type)
    assert problem is not None and "srtp_protect is int(*)(void *, void *, long *)" in problem
    missing = SimpleNamespace(**{name: getattr(_lib, name) for name in PYLIBSRTP_NAMES if name != "srtp_unprotect"})
    assert "srtp_unprotect is missing" in (check_libsrtp(lib=missing) or "")
    wrong_function = check_libsrtp(address=lambda: protect_address("srtp_protect_rtcp"))
    assert wrong_function is not None and "known-answer" in wrong_function
