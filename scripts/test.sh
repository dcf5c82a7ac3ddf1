#!/usr/bin/env bash
# Install what the tests need (Python packages; Debian chromium, redis-server, postgresql, ffmpeg, coturn,
# nftables, nginx) and run ruff, mypy and the whole pytest suite. Extra arguments go to pytest. The storage tests start
# their own PostgreSQL cluster (tests/pgserver.py): the package's own cluster service is not needed.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
apt_install chromium redis-server postgresql ffmpeg fonts-dejavu-core coturn nftables nginx systemd openssl
ensure_compiler || echo "no C compiler: the compiled SFU path cannot be built (TAPHUAN_REQUIRE_COMPILED=0 to test without it)" >&2
ensure_venv "[test]"
cd "$ROOT"
echo "==> ruff"
"$VENV/bin/ruff" check .
echo "==> mypy"
"$VENV/bin/mypy"
echo "==> pytest"
# the compiled SFU path must be built and accepted: its tests fail the run instead of skipping (tests/conftest.py)
export TAPHUAN_REQUIRE_COMPILED="${TAPHUAN_REQUIRE_COMPILED:-1}"
set +e
"$VENV/bin/pytest" -q -p no:cacheprovider "$@"
status=$?
set -e
if [ $status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit $status
