"""The webhook ingress against an independent Standard Webhooks implementation.

Run by scripts/test after the Swift build: it starts `duo-lifecycle kafka-cluster` and
`duo-lifecycle ingress` as separate processes, signs requests with the `standardwebhooks`
package (pip install standardwebhooks), and reads what reached Kafka with kcat.
"""
import base64
import datetime
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest
from standardwebhooks.webhooks import Webhook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("DUO_LIFECYCLE_BIN") or os.path.join(ROOT, ".build", "debug", "duo-lifecycle")
TOPIC = "hr.employee.lifecycle.v1"
OLD_SECRET = "whsec_" + base64.b64encode(b"python-old-signing-key-0123456789").decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"python-new-signing-key-9876543210").decode()


@pytest.fixture(scope="module")
def stack():
    assert os.access(BINARY, os.X_OK), f"build first: {BINARY} is missing"
    kafka = subprocess.Popen([BINARY, "kafka-cluster", "--topic", f"{TOPIC}:3", "--log-level", "error"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    bootstrap = kafka.stdout.readline().strip()
    assert bootstrap, "the cluster prints its bootstrap servers first"
    directory = tempfile.mkdtemp(prefix="ingress-py-")
    secrets = os.path.join(directory, "hris-secrets")
    with open(secrets, "w") as f:
        # A rotation: the new secret and the old one are both accepted.
        f.write(NEW_SECRET + "\n" + OLD_SECRET + "\n")
    config = os.path.join(directory, "config.yaml")
    with open(config, "w") as f:
        f.write(f"""kafka:
  bootstrap_servers: {bootstrap}
ingress:
  host: 127.0.0.1
  port: 0
  sources:
    - name: hris
      format: standard-webhooks
      secrets_file: {secrets}
log:
  level: debug
""")
    ingress = subprocess.Popen([BINARY, "ingress", "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = ingress.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"unexpected first line: {url!r}"
        yield {"url": url, "bootstrap": bootstrap}
    finally:
        ingress.terminate()
        assert ingress.wait(timeout=30) == 0, "the ingress exits 0 on SIGTERM"
        stderr = ingress.stderr.read()
        assert "Webhook refused" in stderr, "refusals are logged (at info)"
        for secret in (OLD_SECRET, NEW_SECRET, OLD_SECRET[6:], NEW_SECRET[6:]):
            assert secret not in stderr, "a secret reached the logs"
        assert "p1@example.com" not in stderr, "no body in the logs"
        kafka.terminate()
        kafka.wait(timeout=30)


def post(url, msg_id, body, secret, when=None):
    when = when or datetime.datetime.now(tz=datetime.timezone.utc)
    signature = Webhook(secret).sign(msg_id, when, body)
    request = urllib.request.Request(url + "/webhooks/hris", data=body.encode(), method="POST", headers={
        "content-type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.headers["content-type"] == "application/problem+json"
        return error.code, json.loads(error.read())


def hire(employee):
    return json.dumps({"type": "hr.employee.hired", "timestamp": "2026-11-30T09:00:00Z",
                       "data": {"employee_id": employee, "email": f"{employee.lower()}@example.com", "roles": ["engineering"]}})


def test_signed_by_standardwebhooks_is_accepted_and_published(stack):
    status, body = post(stack["url"], "msg_py_1", hire("P1"), NEW_SECRET)
    assert status == 202, body
    assert body["events"] == ["msg_py_1"]
    headers = subprocess.run(["kcat", "-C", "-b", stack["bootstrap"], "-t", TOPIC, "-e", "-q", "-f", "%k %h\n"],
                             capture_output=True, text=True, timeout=60).stdout
    line = next(l for l in headers.splitlines() if "ce_id=msg_py_1" in l)
    assert line.startswith("P1 "), "keyed by the employee id"
    assert "ce_type=hr.employee.hired" in line and "ce_source=urn:duo-lifecycle:ingress:hris" in line


def test_the_rotated_out_secret_still_verifies(stack):
    status, body = post(stack["url"], "msg_py_old", hire("P2"), OLD_SECRET)
    assert status == 202, body


def test_wrong_secret_is_401(stack):
    other = "whsec_" + base64.b64encode(b"somebody-elses-signing-key-00000").decode()
    status, body = post(stack["url"], "msg_py_wrong", hire("P3"), other)
    assert status == 401 and body["status"] == 401
    assert "signature" in body["detail"]


def test_old_timestamp_is_401(stack):
    old = datetime.datetime.now(tz=datetime.timezone.utc) - datetime.timedelta(minutes=6)
    status, body = post(stack["url"], "msg_py_late", hire("P4"), NEW_SECRET, when=old)
    assert status == 401
    assert "tolerated" in body["detail"]


def test_future_timestamp_is_401(stack):
    ahead = datetime.datetime.now(tz=datetime.timezone.utc) + datetime.timedelta(minutes=6)
    status, _ = post(stack["url"], "msg_py_ahead", hire("P5"), NEW_SECRET, when=ahead)
    assert status == 401
