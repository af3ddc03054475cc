"""Checks the contracts: every JSON Schema is valid draft 2020-12, the AsyncAPI document's
references point at files that exist, every valid-*.json example validates and every
invalid-*.json example does not. Exits non-zero on any disagreement. Run by .ci/run."""
import json
import pathlib
import sys

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

HERE = pathlib.Path(__file__).resolve().parent
MAX_EVENT_BYTES = 64 * 1024
problems = []

schemas = {p.name: json.loads(p.read_text()) for p in sorted((HERE / "schemas").glob("*.json"))}
for name, schema in schemas.items():
    try:
        Draft202012Validator.check_schema(schema)
    except Exception as error:  # noqa: BLE001
        problems.append(f"schemas/{name}: not a valid draft 2020-12 schema: {error}")

registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
envelope = Draft202012Validator(schemas["cloudevent.schema.json"], registry=registry, format_checker=FormatChecker())

asyncapi = yaml.safe_load((HERE / "asyncapi.yaml").read_text())
if asyncapi.get("asyncapi", "").split(".")[0] != "3":
    problems.append("asyncapi.yaml: not an AsyncAPI 3 document")


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


for ref in refs(asyncapi):
    target = ref.split("#")[0]
    if target and not (HERE / target).exists():
        problems.append(f"asyncapi.yaml: $ref {ref} points at a missing file")

examples = sorted((HERE / "examples").glob("*.json"))
counts = {"valid": 0, "invalid": 0}
for path in examples:
    expected = path.name.split("-")[0]
    if expected not in counts:
        problems.append(f"examples/{path.name}: name must start with valid- or invalid-")
        continue
    raw = path.read_bytes()
    errors = [] if len(raw) <= MAX_EVENT_BYTES else [f"larger than {MAX_EVENT_BYTES} bytes"]
    errors += [e.message for e in envelope.iter_errors(json.loads(raw))]
    if (expected == "valid") != (not errors):
        problems.append(f"examples/{path.name}: expected {expected}, validator says " + ("; ".join(errors) or "valid"))
    counts[expected] += 1

types = ["hired", "updated", "role_changed", "terminated", "rehired"]
for t in types:
    for kind in counts:
        if not any(p.name.startswith(f"{kind}-{t}") for p in examples):
            problems.append(f"examples: no {kind}-{t}*.json example")

for problem in problems:
    print("FAIL", problem)
print(f"contracts: {len(schemas)} schemas, {counts['valid']} valid and {counts['invalid']} invalid examples checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
