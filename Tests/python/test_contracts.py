"""Runs contracts/validate.py: every JSON Schema is valid draft 2020-12, the AsyncAPI document's
references resolve, and every example validates exactly when its name says valid-."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_contracts_validate():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "contracts", "validate.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problems" in result.stdout
