#!/usr/bin/env bash
# The main job: the demo against the built-in OCI simulator, in its own virtualenv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/_bootstrap.sh" gateway,testing dev
cd "$root"
python -m ocilm.demo "$@"
