"""``voltlib demo`` end to end, as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port


def test_demo_runs_for_a_while_and_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    voltlib = Path(sys.executable).parent / "voltlib"
    result = subprocess.run([str(voltlib), "demo", "--duration", "8", "--port", str(port)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                                            "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"http://127.0.0.1:{port}/api/v1" in out
    assert f"http://127.0.0.1:{port}/api/v1/openapi.json" in out
    assert "Authorization: Bearer vlt_" in out
    counts = [int(n) for n in re.findall(r"Transactions: (\d+)", out)]
    assert counts and counts[-1] > 0, out
    assert "MEMBER-BLOCKED refused" in out
    assert "API command GetConfiguration" in out and "answered" in out
    assert (tmp_path / "voltlib-demo.db").exists()
