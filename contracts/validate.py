"""Checks the contracts: every JSON Schema is valid draft 2020-12, the AsyncAPI document's
references point at files that exist, every valid-*.json example validates and every
invalid-*.json example does not. Exits non-zero on any disagreement. Run by .ci/run."""
import base64
import json
import pathlib
import struct
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

# The ingress's OpenAPI document: its file references exist, and its examples of events are valid.
openapi = yaml.safe_load((HERE / "ingress.openapi.yaml").read_text())
if not str(openapi.get("openapi", "")).startswith("3.1"):
    problems.append("ingress.openapi.yaml: not an OpenAPI 3.1 document")
for ref in refs(openapi):
    target = ref.split("#")[0]
    if target and not (HERE / target).exists():
        problems.append(f"ingress.openapi.yaml: $ref {ref} points at a missing file")
    fragment = ref.split("#", 1)[1] if "#" in ref and not target else None
    if fragment is not None:
        node = openapi
        for part in fragment.strip("/").split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            problems.append(f"ingress.openapi.yaml: $ref {ref} points at nothing")
shown = openapi["components"]["examples"]
hire = shown["StandardWebhookHire"]["value"]
for error in Draft202012Validator(schemas["hr.employee.hired.schema.json"], registry=registry).iter_errors(hire["data"]):
    problems.append(f"ingress.openapi.yaml: StandardWebhookHire data: {error.message}")
for name in ["CloudEventRehire"]:
    for error in envelope.iter_errors(shown[name]["value"]):
        problems.append(f"ingress.openapi.yaml: {name}: {error.message}")
batch = openapi["paths"]["/webhooks/{source}"]["post"]["requestBody"]["content"]["application/cloudevents-batch+json"]["examples"]["batch"]["value"]
for i, event in enumerate(batch):
    for error in envelope.iter_errors(event):
        problems.append(f"ingress.openapi.yaml: batch example [{i}]: {error.message}")

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

def spring_decoding_problems(headers):
    """Reads the binary dead-letter headers as Spring Kafka does (ByteBuffer.getInt / getLong,
    big-endian) and checks them against their readable dlq-original-* copies."""
    found = []
    for name, fmt, copy in [("partition", ">i", "dlq-original-partition"), ("offset", ">q", "dlq-original-offset"),
                            ("timestamp", ">q", "dlq-original-timestamp")]:
        raw = base64.b64decode(headers.get(f"kafka_dlt-original-{name}", ""))
        if len(raw) != struct.calcsize(fmt):
            found.append(f"kafka_dlt-original-{name} has {len(raw)} bytes; Spring reads {struct.calcsize(fmt)}")
            continue
        (value,) = struct.unpack(fmt, raw)
        if copy in headers and str(value) != headers[copy]:
            found.append(f"kafka_dlt-original-{name} decodes to {value}, but {copy} says {headers[copy]}")
    return found


# Output examples: result event data and dead-letter headers, each against its schema.
for folder, schema_name in [("results", "duo.provisioning.result.schema.json"), ("dead-letters", "dead-letter-headers.schema.json")]:
    validator = Draft202012Validator(schemas[schema_name], registry=registry, format_checker=FormatChecker())
    found = sorted((HERE / "examples" / folder).glob("*.json"))
    if not found:
        problems.append(f"examples/{folder}: no example")
    for path in found:
        example = json.loads(path.read_text())
        for error in validator.iter_errors(example):
            problems.append(f"examples/{folder}/{path.name}: {error.message}")
        if folder == "dead-letters":
            problems += [f"examples/{folder}/{path.name}: {p}" for p in spring_decoding_problems(example)]
        counts["valid"] += 1

types = ["hired", "updated", "role_changed", "terminated", "rehired"]
for t in types:
    for kind in counts:
        if not any(p.name.startswith(f"{kind}-{t}") for p in examples):
            problems.append(f"examples: no {kind}-{t}*.json example")

for problem in problems:
    print("FAIL", problem)
print(f"contracts: {len(schemas)} schemas, {counts['valid']} valid and {counts['invalid']} invalid examples checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
