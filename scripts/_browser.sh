# Sourced by scripts/test.sh: Debian's Chromium for the usage console's browser tests (a browser
# cannot be downloaded by Playwright here). Installed once with apt-get when missing; without it
# the browser tests skip, and CI (OCILM_NO_SKIPS=1) fails.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
  if ! { $sudo_cmd apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 ||
         { $sudo_cmd apt-get update -q >/dev/null 2>&1 && $sudo_cmd apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; }; then
    echo "scripts/test.sh: could not install Debian's chromium with apt-get" >&2
  fi
fi
