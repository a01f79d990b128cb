"""Validate documents against the JSON Schemas in docs/schemas (draft 2020-12, cross-file $refs by $id)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def errors(document: Any, name: str) -> list[str]:
    """Every violation of docs/schemas/`name` by `document`, as "path: message" (empty: valid)."""
    schema = json.loads((SCHEMAS / name).read_text())
    validator = Draft202012Validator(schema, registry=_registry())
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}"
                  for e in validator.iter_errors(document))
