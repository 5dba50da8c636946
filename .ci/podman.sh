#!/usr/bin/env bash
# Install what building and running the serving-runtime image needs (Debian packages):
# podman + runc (containers), mmdebstrap (the offline base), docker-registry (a local registry that
# stands in for ECR / Artifact Registry / ACR in tests). Quick when they are there.
set -euo pipefail
missing=()
command -v podman >/dev/null || missing+=(podman)
[[ -x /usr/sbin/runc || -x /usr/bin/runc ]] || missing+=(runc)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v docker-registry >/dev/null || missing+=(docker-registry)
if (( ${#missing[@]} )); then
    sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    echo "installing ${missing[*]} (Debian packages)…" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
