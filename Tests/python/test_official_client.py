"""Duo's official Python client (pip install duo-client) against the duo-lifecycle emulator.

Run by .ci/run after the Swift build: it starts `duo-lifecycle emulator` as a separate process
and drives it with duo_client.Admin over HTTP, once with the client's default signature (v5)
and once with v2 / HMAC-SHA1.
"""
import hashlib
import os
import subprocess

import duo_client
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("DUO_LIFECYCLE_BIN") or os.path.join(ROOT, ".build", "debug", "duo-lifecycle")
IKEY = "DIPYTHONCLIENTTEST01"
SKEY = "python-official-client-secret-0123456789"


@pytest.fixture(scope="module")
def port():
    assert os.access(BINARY, os.X_OK), f"build first: {BINARY} is missing"
    process = subprocess.Popen(
        [BINARY, "emulator", "--port", "0", "--ikey", IKEY, "--skey", SKEY, "--log-level", "error"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"unexpected first line: {url!r}"
        yield int(url.rsplit(":", 1)[1])
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0, "the emulator exits 0 on SIGTERM"


def admin(port, skey=SKEY, **kwargs):
    return duo_client.Admin(ikey=IKEY, skey=skey, host="127.0.0.1", port=port, ca_certs="HTTP", **kwargs)


SCHEMES = {
    "v5": {},
    "v2-sha1": {"sig_version": 2, "digestmod": hashlib.sha1},
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_lifecycle_with_official_client(port, scheme):
    client = admin(port, **SCHEMES[scheme])
    prefix = scheme.replace("-", "")

    created = [client.add_user(f"{prefix}-user{i:03d}", realname=f"Üser Nº{i}", email=f"{prefix}{i}@example.com")
               for i in range(320)]
    assert len({u["user_id"] for u in created}) == 320

    listed = [u for u in client.get_users() if u["username"].startswith(prefix + "-")]
    assert len(listed) == 320, "every user is listed, across pages"
    assert len({u["user_id"] for u in listed}) == 320

    with pytest.raises(RuntimeError) as duplicate:
        client.add_user(f"{prefix}-user000")
    assert duplicate.value.status == 400

    group = client.create_group(f"{prefix}-Engineering", desc="Engineers", push_enabled=True)
    user = created[0]
    client.add_user_group(user["user_id"], group["group_id"])
    assert [g["group_id"] for g in client.get_user_groups(user["user_id"])] == [group["group_id"]]
    assert [m["user_id"] for m in client.get_group_users(group["group_id"])] == [user["user_id"]]

    updated = client.update_user(user["user_id"], status="disabled")
    assert updated["status"] == "disabled"
    assert client.get_user_by_id(user["user_id"])["status"] == "disabled"

    client.delete_user(user["user_id"])
    with pytest.raises(RuntimeError) as gone:
        client.get_user_by_id(user["user_id"])
    assert gone.value.status == 404


def test_wrong_secret_is_40103(port):
    client = admin(port, skey="not-the-right-secret")
    with pytest.raises(RuntimeError) as failure:
        client.get_users()
    assert failure.value.status == 401
    assert failure.value.data["code"] == 40103
