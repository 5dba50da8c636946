#!/usr/bin/env bash
# Create .venv and install the locked dependency set. Quick (a hash check) when nothing changed.
# uv when it can be had, else pip. uv does not read pip's config, so the wheel folder named by
# PIP_FIND_LINKS (where the CPU build of torch lies) is passed to it as --find-links.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" ]]; then
    exit 0
fi

PYTHON="$(command -v python3.11 || command -v python3)"
find_links=()
if [[ -n "${PIP_FIND_LINKS:-}" ]]; then
    for dir in $PIP_FIND_LINKS; do find_links+=(--find-links "$dir"); done
fi

start=$(date +%s)
if ! command -v uv >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet uv >/dev/null 2>&1 || true
fi
if command -v uv >/dev/null 2>&1; then
    export UV_PYTHON_DOWNLOADS=never
    [[ -x "$VENV/bin/python" ]] || uv venv --quiet --python "$PYTHON" "$VENV"
    VIRTUAL_ENV="$VENV" uv pip install --quiet "${find_links[@]}" -r requirements.lock
    VIRTUAL_ENV="$VENV" uv pip install --quiet --no-deps -e .
else
    echo "uv unavailable: installing with pip (slower)" >&2
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r requirements.lock
    "$VENV/bin/pip" install --quiet --no-deps -e .
fi
rm -f "$VENV"/.installed-*
touch "$STAMP"
echo "set-up: .venv ready in $(( $(date +%s) - start )) s" >&2
