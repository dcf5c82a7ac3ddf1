#!/usr/bin/env bash
# Start Taphuan on embedded defaults (SQLite, in-process bus): creates the environment if missing.
# Extra arguments go to `taphuan serve`, e.g. scripts/serve.sh --host 0.0.0.0 --port 8443
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_compiler || echo "no C compiler: the SFU uses its pure-Python fan-out" >&2
ensure_venv ""
cd "$ROOT"
exec "$VENV/bin/taphuan" serve "$@"
