#!/usr/bin/env bash
# Run the benchmarks: bench/run.sh [--db sqlite|postgres] [--size tiny|full] [--repeat N] [--only NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m bench "$@"
