"""Tests of scripts/common.sh: a venv it creates has pip and setuptools upgraded before anything is installed.

`python3` is replaced by a stand-in whose venv records every pip call, so the test needs neither network nor minutes;
what is checked is the order and the arguments of the calls the script makes.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A stand-in `python3`: `-c` checks pass; `-m venv DIR` makes DIR/bin/python and DIR/bin/pip that log their arguments.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-c" ]; then exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  for tool in python pip; do
    printf '#!/bin/sh\\necho "%s $*" >> "%s/calls.log"\\n' "$tool" "$3" > "$3/bin/$tool"
    chmod +x "$3/bin/$tool"
  done
  exit 0
fi
exit 1
"""


def _ensure_venv(tmp_path: Path, venv: Path) -> list[str]:
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "TAPHUAN_VENV": str(venv), "PYTHON": str(fake)}
    subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/common.sh" && ensure_venv ""'], env=env, check=True,
                   capture_output=True, timeout=60)
    log = venv / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_new_venv_gets_pip_and_setuptools_upgraded_first(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    calls = _ensure_venv(tmp_path, venv)
    assert len(calls) == 2, calls
    upgrade, install = calls
    assert upgrade.startswith("python -m pip install") and "--upgrade" in upgrade.split()
    assert upgrade.split()[-2:] == ["pip", "setuptools"]
    assert f"-c {ROOT}/constraints.txt" in upgrade  # setuptools stays at the tested pin (a fixed version)
    assert install.startswith("pip install") and f"-e {ROOT}" in install

    (venv / "calls.log").unlink()
    (venv / ".taphuan-installed").unlink()
    assert _ensure_venv(tmp_path, venv) == [install]  # once is enough

    (venv / "calls.log").unlink()
    (venv / ".taphuan-pip-upgraded").unlink()  # a venv made before the step existed is upgraded on the next run
    assert _ensure_venv(tmp_path, venv) == [upgrade]
