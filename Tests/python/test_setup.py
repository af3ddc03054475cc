"""scripts/setup, which the README's first two commands run: on a machine missing a package it
installs exactly the missing ones and says why (issue 16, point 1). dpkg, apt-get and sudo are
stand-ins here that record what they were asked."""
import os
import stat
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stub(directory, name, body):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def run_setup(installed, *args):
    with tempfile.TemporaryDirectory() as bin_dir:
        log = os.path.join(bin_dir, "calls.log")
        stub(bin_dir, "dpkg", 'case " ' + " ".join(installed) + ' " in *" $2 "*) exit 0;; *) exit 1;; esac')
        stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}')
        stub(bin_dir, "sudo", f'echo "sudo" >> {log}; "$@"')
        stub(bin_dir, "id", 'echo 1000')
        env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])
        result = subprocess.run([os.path.join(ROOT, "scripts", "setup"), *args], env=env, capture_output=True, text=True, timeout=60)
        calls = open(log).read() if os.path.exists(log) else ""
        return result, calls


def test_a_fresh_machine_gets_the_missing_packages_with_a_reason():
    result, calls = run_setup(["libsqlite3-dev"])
    assert result.returncode == 0, result.stderr
    assert "installing librdkafka-dev (the Kafka C library)" in result.stderr
    assert "libsqlite3-dev" not in result.stderr, "what is there is left alone"
    assert "sudo" in calls, "not root: through sudo"
    assert "apt-get update" in calls and "install -y -qq librdkafka-dev" in calls


def test_nothing_is_installed_when_nothing_is_missing():
    result, calls = run_setup(["librdkafka-dev", "libsqlite3-dev"])
    assert result.returncode == 0 and calls == "" and result.stderr == ""


def test_the_test_set_adds_the_test_tools():
    result, calls = run_setup(["librdkafka-dev", "libsqlite3-dev", "python3-pip"], "--test")
    assert result.returncode == 0, result.stderr
    for package in ["kcat", "postgresql", "openssl", "prometheus", "chromium", "chromium-driver"]:
        assert f"installing {package} (" in result.stderr
    assert "install -y -qq kcat postgresql openssl prometheus chromium chromium-driver" in calls
