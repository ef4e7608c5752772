"""A test run never skips silently: what this machine cannot run is named at the end, and fails the run.

The suite's own conftest.py runs a small suite in a child pytest: one module skipped at import
(``pytest.importorskip``, as the browser tests do without playwright), one test skipped through
``not_here`` (as a browser test does without Chromium), and one test that passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = {
    "test_needs_a_module.py": (
        "import pytest\n"
        "pytest.importorskip('no_such_module_on_any_machine'"
        ", reason='needs no_such_module_on_any_machine (fix: pip it)')\n"
        "def test_uses_it():\n"
        "    pass\n"
    ),
    "test_needs_a_program.py": (
        "from conftest import not_here\n"
        "def test_uses_it():\n"
        "    not_here('needs the program frobnicate', 'apt-get install -y frobnicate')\n"
    ),
    "test_runs.py": "def test_runs():\n    pass\n",
}


def run_suite(tmp_path: Path, **env: str) -> tuple[int, str]:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    for name, text in SUITE.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:ape_test", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "RXCHAIN_ALLOW_SKIPS"} | env,
    )
    return done.returncode, done.stdout


def test_a_run_with_tests_this_machine_cannot_run_names_them_and_fails(tmp_path):
    code, out = run_suite(tmp_path)

    assert code == 1, out
    assert "2 TESTS DID NOT RUN: this machine lacks what they need" in out
    assert "needs no_such_module_on_any_machine (fix: pip it) (module test_needs_a_module.py)" in out
    assert "needs the program frobnicate (fix: apt-get install -y frobnicate)" in out
    assert "1 passed, 2 skipped" in out


def test_the_gap_can_be_accepted_out_loud(tmp_path):
    code, out = run_suite(tmp_path, RXCHAIN_ALLOW_SKIPS="1")

    assert code == 0, out
    assert "2 TESTS DID NOT RUN" in out and "RXCHAIN_ALLOW_SKIPS=1: the run does not fail for them" in out
