#!/usr/bin/env bash
# Set up everything and run the main job: the order service on the embedded SQLite default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/order-machine serve "$@"
