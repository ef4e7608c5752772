"""Running a page module's operations in node, for the tests that compare the dApp's JavaScript with the
Python modules byte for byte: a runner script reads a JSON list of operations on stdin and prints one
JSON answer per operation."""

from __future__ import annotations

import json
import shutil
import subprocess

from rxchain.paths import project_root, tool_env

NODE = shutil.which("node", path=tool_env()["PATH"]) or "node"


def run_node(runner: str, ops: list[dict], *, timeout: int = 120) -> list[dict]:
    """The answers of ``runner`` (an ES module's source) to ``ops``, one per operation."""
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", runner],
        input=json.dumps(ops),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=project_root(),
        env=tool_env(),
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert len(answers) == len(ops)
    return answers
