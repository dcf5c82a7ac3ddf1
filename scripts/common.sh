# Shared by scripts/serve.sh and scripts/test.sh: install what is missing, create the venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TAPHUAN_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

APT_UPDATED=0
apt_install() {
  # apt_install PKG...: install the Debian packages that are not installed yet.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> apt-get install ${missing[*]}"
  if [ $APT_UPDATED = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_compiler() {
  # ensure_compiler: gcc and the Python headers for the optional C fan-out (sfu/_fanout.c), when Python.h is missing.
  # Without them the install still succeeds and the SFU forwards in pure Python.
  local inc
  inc="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  if [ ! -f "$inc/Python.h" ] || ! command -v gcc >/dev/null; then apt_install gcc python3-dev; fi
}

ensure_venv() {
  # ensure_venv EXTRA: create the venv if missing and install the project (with EXTRA, e.g. "[test]").
  local extra="${1:-}"
  if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  # The pip and setuptools a venv starts with are those bundled with Python, often years old and with known
  # vulnerabilities: upgrade them once, right after creation (and in a venv made before this step existed).
  if [ ! -f "$VENV/.taphuan-pip-upgraded" ]; then
    echo "==> upgrading pip and setuptools"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade -c "$ROOT/constraints.txt" \
      pip setuptools
    touch "$VENV/.taphuan-pip-upgraded"
  fi
  local stamp="$VENV/.taphuan-installed$extra"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$ROOT/constraints.txt" -nt "$stamp" ] \
    || [ "$ROOT/setup.py" -nt "$stamp" ] || [ -n "$(find "$ROOT/sfu" -maxdepth 1 -name '_*.[ch]' -newer "$stamp")" ]; then
    echo "==> installing Python packages"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT$extra"
    touch "$stamp"
  fi
}
