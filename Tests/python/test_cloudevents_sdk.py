"""CloudEvents conformance (issue 16, point 3), checked with the official Python SDK
(pip install cloudevents) against a running `dev --keep-running` stack:

- every result event on the results topic parses with the SDK's Kafka binding, including the
  result of a keyless record (no empty `subject`, which the SDK refuses);
- an event the SDK makes, sent without `time` (optional in CloudEvents 1.0; several SDKs leave
  it out), is applied in binary and in structured mode rather than dead-lettered.
"""
import json
import os
import subprocess
import tempfile
import time
import uuid

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

LIFECYCLE = "hr.employee.lifecycle.v1"
RESULTS = "duo.provisioning.results.v1"


def consume(stack, topic):
    out = subprocess.run(["kcat", "-C", "-b", stack.bootstrap, "-t", topic, "-e", "-J", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def produce(stack, message):
    """Publishes a cloudevents KafkaMessage (headers, key, value) with kcat."""
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write(message.value)
    command = ["kcat", "-P", "-b", stack.bootstrap, "-t", LIFECYCLE]
    if message.key is not None:
        command += ["-k", message.key if isinstance(message.key, str) else message.key.decode()]
    for name, value in message.headers.items():
        command += ["-H", f"{name}={value.decode()}"]
    try:
        out = subprocess.run(command + [f.name], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    finally:
        os.unlink(f.name)


def as_kafka_message(record):
    pairs = record.get("headers") or []
    headers = {pairs[i]: (pairs[i + 1] or "").encode() for i in range(0, len(pairs), 2)}
    key = record.get("key")
    return ce_kafka.KafkaMessage(headers=headers, key=key.encode() if key is not None else None, value=(record.get("payload") or "").encode())


def wait_for_result(stack, event_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in consume(stack, RESULTS):
            data = json.loads(record["payload"])
            if data.get("source_event", {}).get("id") == event_id:
                return record, data
        time.sleep(1)
    raise AssertionError(f"no result for {event_id} in {timeout} s")


def hire(employee, event_id):
    return CloudEvent(attributes={"id": event_id, "source": "urn:example:sdk-hr", "type": "hr.employee.hired",
                                  "datacontenttype": "application/json", "subject": employee, "partitionkey": employee},
                      data={"employee_id": employee, "email": f"{employee.lower()}@example.com", "roles": ["engineering"], "sequence": 1})


def test_every_result_event_parses_with_the_sdk_including_a_keyless_records(dev_stack):
    # A keyless, malformed record: its result has no employee to name.
    keyless = ce_kafka.KafkaMessage(headers={"ce_specversion": b"1.0", "ce_id": b"sdk-keyless-1", "ce_source": b"urn:example:sdk-hr",
                                             "ce_type": b"hr.employee.hired", "content-type": b"application/json"}, key=None, value=b"{")
    produce(dev_stack, keyless)
    record, data = wait_for_result(dev_stack, "sdk-keyless-1")
    assert data["outcome"] == "dead_lettered"
    results = consume(dev_stack, RESULTS)
    assert len(results) >= 10, "the dev scenario's results are there"
    for record in results:
        event = ce_kafka.from_binary(as_kafka_message(record), JSONFormat())
        assert event.get_specversion() == "1.0"
        assert event.get_type() == "duo.provisioning.result"
        assert event.get_subject() is None or event.get_subject() != ""
        assert event.get_time() is not None


def test_an_sdk_event_without_time_is_applied_in_binary_mode(dev_stack):
    event_id = f"sdk-binary-{uuid.uuid4()}"
    message = ce_kafka.to_binary(hire("SDK1", event_id), JSONFormat())
    headers = {k: v for k, v in message.headers.items() if k != "ce_time"}
    produce(dev_stack, ce_kafka.KafkaMessage(headers=headers, key=message.key, value=message.value))
    _, data = wait_for_result(dev_stack, event_id)
    assert data["outcome"] == "applied", data


def test_an_sdk_event_without_time_is_applied_in_structured_mode(dev_stack):
    event_id = f"sdk-structured-{uuid.uuid4()}"
    message = ce_kafka.to_structured(hire("SDK2", event_id), JSONFormat())
    envelope = json.loads(message.value)
    envelope.pop("time")
    produce(dev_stack, ce_kafka.KafkaMessage(headers=message.headers, key=message.key, value=json.dumps(envelope).encode()))
    _, data = wait_for_result(dev_stack, event_id)
    assert data["outcome"] == "applied", data
