"""``voltlib demo`` end to end, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port


def test_demo_plays_part_of_the_morning_and_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    voltlib = Path(sys.executable).parent / "voltlib"
    result = subprocess.run([str(voltlib), "demo", "--duration", "15", "--port", str(port)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=180, env={
                                "PATH": "/usr/bin:/bin", "COLUMNS": "120",
                                "PYTHONPATH": os.environ.get("PYTHONPATH", "")})  # the sources under test
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"http://127.0.0.1:{port}/dashboard/" in out and f"http://127.0.0.1:{port}/gbfs/manifest.json" in out
    assert re.search(r"Admin token vlt_\S+", out)
    served = re.search(r"Rentals\s+(\d+) served of (\d+) wanted", out)
    assert served and int(served.group(1)) > 0, out
    assert re.search(r"Protocol\s+0 errors", out), out
    assert re.search(r"posts: \d+ on OCPP 1\.6, \d+ on OCPP 2\.0\.1", out), out  # a mixed fleet
    assert (tmp_path / "voltlib-demo.db").exists()
