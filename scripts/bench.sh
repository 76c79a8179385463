#!/usr/bin/env bash
# Runs every benchmark in bench/ and writes bench/RESULTS.md (a few minutes on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/_bootstrap.sh" gateway,testing dev
cd "$root"
OCILM_BENCH_COMMAND="./scripts/bench.sh $*" python bench/run.py "$@"
