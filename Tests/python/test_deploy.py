"""The container setup, checked the way Docker would use it (issue 16, points 2 and 6).

The image's health check runs in exec form (no shell: /bin/sh is dash on Debian, which has no
/dev/tcp); it is executed here against a live process, also through dash.
"""
import os
import re
import shlex
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("DUO_LIFECYCLE_BIN") or os.path.join(ROOT, ".build", "debug", "duo-lifecycle")


def dockerfile():
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        return f.read()


def healthcheck_command():
    line = next(l for l in dockerfile().splitlines() if l.startswith("HEALTHCHECK"))
    exec_form = re.search(r"CMD (\[.*\])", line)
    assert exec_form, f"HEALTHCHECK must use the exec form: {line}"
    return yaml.safe_load(exec_form.group(1))


def test_image_builds_from_the_pinned_versions():
    text = dockerfile()
    assert re.search(r"^COPY Package\.swift Package\.resolved \./$", text, re.M), "Package.resolved goes into the build"
    assert "--force-resolved-versions" in text
    with open(os.path.join(ROOT, ".gitignore")) as f:
        assert "Package.resolved" not in f.read()
    tracked = subprocess.run(["git", "ls-files", "Package.resolved"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == "Package.resolved"


def test_dockerignore_keeps_build_output_and_secrets_out():
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        entries = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    assert {".build", ".git", "deploy/duo_skey.txt", "deploy/postgres_password.txt"} <= entries


def test_healthcheck_runs_without_a_shell_against_a_live_process():
    command = healthcheck_command()
    assert command[0] == "duo-lifecycle" and "/bin/sh" not in command
    emulator = subprocess.Popen([BINARY, "emulator", "--port", "0", "--ikey", "DIHEALTHCHECK0000001", "--skey", "s" * 40],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = emulator.stdout.readline().strip()
        port = url.rsplit(":", 1)[1]
        live = [BINARY] + [re.sub(r":8080/", f":{port}/", part) for part in command[1:]]
        assert subprocess.run(live, capture_output=True, timeout=30).returncode == 0
        # The same through dash, as a CMD-SHELL health check or an operator's shell would run it.
        assert subprocess.run(["dash", "-c", " ".join(shlex.quote(p) for p in live)], capture_output=True, timeout=30).returncode == 0
        dead = [BINARY] + [re.sub(r":8080/", ":1/", part) for part in command[1:]]
        assert subprocess.run(dead, capture_output=True, timeout=30).returncode == 1, "nothing listening: unhealthy"
    finally:
        emulator.terminate()
        emulator.wait(timeout=15)


def test_compose_builds_once_exposes_kafka_to_the_host_and_checks_the_emulator_on_its_port():
    for name in ["docker-compose.yaml", "docker-compose.replicas.yaml"]:
        with open(os.path.join(ROOT, "deploy", name)) as f:
            compose = yaml.safe_load(f)
        services = compose["services"]
        built = [s for s, v in services.items() if "build" in v]
        assert built == ["emulator"], f"{name}: one build, not one per service: {built}"
        assert services["worker"]["image"] == services["emulator"]["image"]
        test = services["emulator"].get("healthcheck", {}).get("test")
        assert test == ["CMD", "duo-lifecycle", "health", "--url", "http://127.0.0.1:8081/healthz"], f"{name}: the emulator listens on 8081, not 8080"
        if name == "docker-compose.yaml":
            kafka = services["kafka"]
            assert "29092:29092" in kafka["ports"]
            assert "HOST://localhost:29092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
