"""The repository stands alone: a clone with nothing beside it collects its tests and runs
`voltlib conformance` (issue 21). Data the tests or the package need lives in the repository:
src/voltlib/data, src/voltlib/sharing/data and tests/vendor."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# a path to the reference folder that sits beside the checkout on the developers' machines
BESIDE = re.compile(r"\.\./shared|[\"']shared[\"']\s*/|/work/shared")


def repository_files() -> list[Path]:
    """Tracked files, and new ones not yet added (but not the ignored: .venv, caches)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode()
    return sorted({Path(name) for name in listed.split("\0") if name and (ROOT / name).is_file()})


def test_nothing_refers_to_files_beside_the_repository() -> None:
    this = Path(__file__).resolve().relative_to(ROOT)
    found = []
    for name in repository_files():
        if name == this:
            continue
        text = (ROOT / name).read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if BESIDE.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's files in an empty temporary directory: nothing beside it."""
    copy = tmp_path_factory.mktemp("clone") / "voltlib"
    for name in repository_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, copy / name)
    return copy


def run(copy: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, check=False, capture_output=True, text=True,
                          timeout=100)


def test_a_copy_alone_collects_the_whole_suite(alone: Path) -> None:
    collected = run(alone, alone, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", collected.stdout, re.MULTILINE), collected.stdout[-3000:]
    assert "error" not in collected.stdout.lower().splitlines()[-1]


def test_a_copy_alone_lists_its_conformance_cases_from_any_directory(alone: Path, tmp_path: Path) -> None:
    listed = run(alone, tmp_path, "-m", "voltlib", "conformance")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "`tests/conformance/test_core_profile.py::test_TC_001_ColdBootChargePoint`" in listed.stdout
    totals = [line for line in listed.stdout.splitlines() if " cases: " in line]
    assert totals[0].startswith("77 cases:") and "missing" not in totals[0], totals
    assert totals[1].startswith("135 cases:"), totals
