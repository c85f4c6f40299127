#!/usr/bin/env bash
# Set up everything (Graphviz, PostgreSQL, .venv) and run the whole test suite, PostgreSQL included.
# Extra arguments go to pytest. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export ORDER_MACHINE_WITH_POSTGRES=1
bash scripts/setup.sh
if [ -z "${ORDER_MACHINE_TEST_PG_URL:-}" ] && [ -f scripts/pg-test-server.sh ]; then
  eval "$(bash scripts/pg-test-server.sh start)"
  # stop it afterwards only if this run started it: another run may be using it
  if [ "${ORDER_MACHINE_PG_STARTED:-0}" = 1 ]; then
    trap 'bash scripts/pg-test-server.sh stop >/dev/null 2>&1 || true' EXIT
  fi
fi
export ORDER_MACHINE_REQUIRE_PG=${ORDER_MACHINE_REQUIRE_PG:-1}
.venv/bin/mypy --no-error-summary src || { echo "mypy --strict found type errors in src/"; exit 1; }
.venv/bin/mypy --no-error-summary tests || { echo "mypy --strict found type errors in tests/"; exit 1; }
.venv/bin/order-machine validate definitions
.venv/bin/order-machine diagram --check
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
