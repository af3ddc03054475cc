"""Shared fixtures: a running `duo-lifecycle dev --keep-running` stack (embedded Kafka, the Duo
emulator, the worker, the webhook ingress) in a temporary directory, as a user starts it."""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("DUO_LIFECYCLE_BIN") or os.path.join(ROOT, ".build", "debug", "duo-lifecycle")


class DevStack:
    def __init__(self, process, directory, lines):
        self.process = process
        self.directory = directory
        self.lines = lines
        text = "\n".join(lines)
        self.bootstrap = re.search(r"bootstrap servers: (\S+)", text).group(1)
        self.emulator = re.search(r"Duo emulator at (http://\S+)", text).group(1)
        self.metrics = re.search(r"curl -s (http://\S+)/metrics", text).group(1)
        console = re.search(r"Operations console at (http://\S+)", text)
        self.console = console.group(1) if console else None
        token = re.search(r"operator token: (\S+)", text)
        self.operator_token = token.group(1) if token else None
        readonly = re.search(r"read-only token: (\S+)", text)
        self.readonly_token = readonly.group(1) if readonly else None


def _drain(stream, into):
    for line in stream:
        into.append(line.rstrip("\n"))


@pytest.fixture(scope="session")
def dev_stack():
    assert os.access(BINARY, os.X_OK), f"build first: {BINARY} is missing"
    directory = tempfile.mkdtemp(prefix="dev-stack-")
    # Warnings too (dev's default is errors only): a timed-out wait prints the last log lines.
    process = subprocess.Popen([BINARY, "dev", "--keep-running", "--log-level", "warning", "--store-dir", os.path.join(directory, "store")],
                               cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    lines, errors = [], []
    # Read both streams all along: a full pipe would stop the stack.
    for stream, into in ((process.stdout, lines), (process.stderr, errors)):
        threading.Thread(target=_drain, args=(stream, into), daemon=True).start()
    deadline = time.monotonic() + 300
    try:
        while not any(line.startswith("Press Ctrl-C to stop.") for line in list(lines)):
            assert process.poll() is None, f"dev exited {process.returncode}: " + "\n".join(lines[-20:] + errors[-20:])
            assert time.monotonic() < deadline, "dev --keep-running did not come up in 5 minutes: " + "\n".join(lines[-20:])
            time.sleep(0.2)
        stack = DevStack(process, directory, list(lines))
        stack.errors = errors
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
