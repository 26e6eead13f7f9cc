"""`python -m featureloop.project`: write the spec's JSON schema to docs/project.schema.json (a unit
test fails while the published schema differs from the models)."""

from __future__ import annotations

import json

from featureloop.project.spec import json_schema
from featureloop.settings import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "docs" / "project.schema.json"


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render())
    print(f"wrote {SCHEMA_PATH}")
