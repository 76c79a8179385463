# Sourced by scripts/demo.sh, scripts/test.sh and scripts/bench.sh: make .venv and install
# the package with the extras named in $1 (comma-separated), plus the dev group when $2 is "dev".
# Re-installs only when pyproject.toml changes (a stamp holds its hash).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${1:-}"
group="${2:-}"
python="${PYTHON:-python3}"
# A venv left half-made (an install interrupted before pip was in it) is made again.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pip" >/dev/null 2>&1; then
  "$python" -m venv --clear "$venv"
  rm -f "$venv/.ocilm-installed"
fi
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)-$extras-$group"
stamp="$venv/.ocilm-installed"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  # pip >= 25.1 reads dependency groups (--group).
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1" >/dev/null
  target="$root"
  if [ -n "$extras" ]; then target="$root[$extras]"; fi
  args=(-e "$target")
  if [ -n "$group" ]; then args+=(--group "$root/pyproject.toml:$group"); fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
