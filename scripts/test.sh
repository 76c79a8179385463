#!/usr/bin/env bash
# Runs the whole test suite (lint included) in its own virtualenv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/_bootstrap.sh" gateway,testing,sso dev
source "$root/scripts/_agents.sh"
source "$root/scripts/_browser.sh"
cd "$root"
ruff check src tests bench
mypy
# every core: each test owns its databases, Redis keys, ports and files
python -m pytest -n "${OCILM_TEST_WORKERS:-auto}" --dist worksteal "$@"
