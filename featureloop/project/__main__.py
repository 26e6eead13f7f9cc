"""`python -m featureloop.project`: write the spec's JSON schema to docs/project.schema.json (a unit
test fails while the published schema differs from the models)."""

from __future__ import annotations

import json
from typing import Any

from featureloop.project.spec import ProjectSpec
from featureloop.settings import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "docs" / "project.schema.json"


def json_schema() -> dict[str, Any]:
    """The spec's JSON schema, as published."""
    schema = ProjectSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "featureloop project spec (project.yaml)"
    return schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render())
    print(f"wrote {SCHEMA_PATH}")
