"""The committed SDK sources are generated from today's OpenAPI document (sdk/generate.sh)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_committed_openapi_document_is_current(thrifty_home: Path) -> None:
    from thrifty.api.app import openapi_document

    committed = json.loads((ROOT / "sdk/typescript/openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document())), "run sdk/generate.sh and commit"
    schema = (ROOT / "sdk/typescript/src/schema.ts").read_text()
    for path in committed["paths"]:
        assert f'"{path}"' in schema, f"{path} missing from schema.ts: run sdk/generate.sh"
    java = ROOT / "sdk/java/src/main/java/dev/thrifty/client/api"
    operations = {op["operationId"] for methods in committed["paths"].values() for op in methods.values()}
    java_text = "".join(p.read_text() for p in java.glob("*.java"))
    missing = [op for op in operations if op.split("_api_v1")[0].replace("_", "") not in java_text.lower()]
    assert not missing, f"Java SDK lacks {missing}: run sdk/generate.sh"
