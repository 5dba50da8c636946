#!/usr/bin/env bash
# Regenerate the SDKs from the API's OpenAPI document (run after changing an operation; commit the result).
#   TypeScript: openapi-typescript (npm) → sdk/typescript/src/schema.ts; `tsc --noEmit` runs in `make test`
#   Java:       openapi-generator (the PyPI wheel ships its jar, so it runs offline) → sdk/java
set -euo pipefail
cd "$(dirname "$0")/.."
THRIFTY_HOME="$(mktemp -d)" .venv/bin/python -m thrifty.api > sdk/typescript/openapi.json
npm ci --prefix sdk/typescript --no-audit --no-fund --silent
(cd sdk/typescript && npx openapi-typescript openapi.json -o src/schema.ts)
venv="$(mktemp -d)/oag"
uv venv -q "$venv" && uv pip install -q --python "$venv/bin/python" openapi-generator-cli==7.26.0
out="$(mktemp -d)"
"$venv/bin/openapi-generator-cli" generate -i sdk/typescript/openapi.json -g java --library native -o "$out" \
  --additional-properties=groupId=dev.thrifty,artifactId=thrifty-client,invokerPackage=dev.thrifty.client,apiPackage=dev.thrifty.client.api,modelPackage=dev.thrifty.client.model,hideGenerationTimestamp=true \
  > /dev/null
rm -rf sdk/java && mkdir -p sdk/java
cp -r "$out/src" "$out/pom.xml" "$out/README.md" sdk/java/
rm -rf sdk/java/src/test "$out" "$(dirname "$venv")"
