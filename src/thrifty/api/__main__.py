"""``python -m thrifty.api``: print the OpenAPI document (what ``sdk/`` is generated from)."""

from __future__ import annotations

import json
import sys

from thrifty.api.app import openapi_document

sys.stdout.write(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
