# Sourced by scripts/demo.sh and scripts/test.sh: make .venv and install what this repo needs.
# Re-installs only when pyproject.toml changes (a stamp holds its hash).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)-$extras"
stamp="$venv/.ocilm-installed"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  if [ -n "$extras" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[$extras]"
  else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root"
  fi
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
