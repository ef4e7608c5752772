#!/usr/bin/env python3
"""Mutation testing of rxchain's contracts (`make mutate`; not part of `make test`).

For each contract, universalmutator writes mutants of its source (one small change each: a flipped
comparison, a deleted token, a line replaced by `revert();` ...). Each mutant is then:

  1. copied into a scratch copy of the project (the real contracts are never written, so a crash
     cannot leave a mutated contract behind);
  2. compiled with the project's full rebuild (`ape compile --force`, with SOLCX_BINARY_PATH and
     APE_DATA_FOLDER as tools/env.sh sets them); a mutant that does not compile is reported as such;
  3. compared with the unmutated build: when every contract's bytecode (the metadata trailer aside)
     is the same, the mutant is equivalent-by-bytecode and is not tested;
  4. tested with the test files that cover the contract (`ape test FILES -x`): a failing test kills it.

Some mutants are set aside before compiling, each counted and listed with its reason: changes only to a
comment, and `break;`/`continue;` inserted outside any loop (which cannot compile). A survivor listed in
tools/mutate-equivalent.txt (contract, original line, mutated line, reason) is reported as equivalent
with that reason; every other survivor is a gap in the tests.

The report goes to .mutate/report.md and .mutate/report.json; the last line on stdout is one JSON
summary. Exit status: 0 when no mutant survived, 1 when one did, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "tools" / "mutate-equivalent.txt"
REPORT_DIR = ROOT / ".mutate"

# Contract -> (source, the test files that cover it, most telling first: -x stops at the first failure).
CONTRACT_TESTS = [
    "tests/contracts/test_issue_cancel.py",
    "tests/contracts/test_redeem.py",
    "tests/contracts/test_trail.py",
    "tests/contracts/test_batch.py",
    "tests/contracts/test_pause_limits.py",
    "tests/contracts/test_roles.py",
    "tests/contracts/test_role_matrix.py",
    "tests/contracts/test_hardening.py",
]
ROLE_TESTS = [
    "tests/contracts/test_roles.py",
    "tests/contracts/test_role_matrix.py",
    "tests/network/test_permissioning_contract.py",
    "tests/network/test_permissioning_hardening.py",
    "tests/contracts/test_hardening.py",
    "tests/contracts/test_issue_cancel.py",
    "tests/contracts/test_redeem.py",
    "tests/contracts/test_trail.py",
    "tests/contracts/test_batch.py",
    "tests/contracts/test_pause_limits.py",
]
TARGETS = {
    "PrescriptionRegistry": ("contracts/PrescriptionRegistry.sol", CONTRACT_TESTS),
    "ConsortiumRoles": ("contracts/ConsortiumRoles.sol", ROLE_TESTS),
    "ConsortiumPermissioning": (
        "contracts/ConsortiumPermissioning.sol",
        ["tests/network/test_permissioning_contract.py", "tests/network/test_permissioning_hardening.py"],
    ),
    "PrescriptionRecord": ("contracts/libraries/PrescriptionRecord.sol", CONTRACT_TESTS),
    "BatchRecord": (
        "contracts/libraries/BatchRecord.sol",
        ["tests/contracts/test_batch.py"] + [t for t in CONTRACT_TESTS if not t.endswith("test_batch.py")],
    ),
    "DrugBoxes": ("contracts/DrugBoxes.sol", ["tests/contracts/test_boxes.py", "tests/contracts/test_claims.py"]),
}

# What a scratch copy of the project needs (node_modules is linked, not copied).
SCRATCH_FILES = ["contracts", "tests", "ape-config.yaml", "pyproject.toml", "package.json", "package-lock.json"]


class MutateError(Exception):
    """A setup or usage problem, reported as `mutate: <message>`."""


# ----------------------------------------------------------------------------------- mutants


@dataclasses.dataclass(eq=False)
class Mutant:
    contract: str
    source: str  # path relative to the project root
    number: int  # universalmutator's number for it
    text: str  # the whole mutated source
    line: int  # first changed line (1-based, in the original)
    before: str  # the original line(s), stripped
    after: str  # the mutated line(s), stripped
    outcome: str = ""  # pruned | did-not-compile | equivalent | killed | survived | error
    reason: str = ""
    seconds: float = 0.0

    @property
    def key(self):
        return (self.contract, self.before, self.after)

    def describe(self):
        return f"{self.contract}:{self.line}: `{self.before}` -> `{self.after}`"


def _strip_comment(line: str) -> str:
    """The code of a line without a trailing // comment (good enough for this code base: no '//' in strings)."""
    return line.split("//", 1)[0].rstrip()


def _is_comment(line: str) -> bool:
    s = line.strip()
    return s.startswith(("//", "/*", "*")) or s == ""


def _loop_lines(lines: list[str]) -> set[int]:
    """0-based indexes of the lines inside a for/while loop's braces."""
    inside = set()
    for start, line in enumerate(lines):
        if not re.match(r"\s*(for|while)\s*\(", _strip_comment(line)):
            continue
        depth = 0
        for i in range(start, len(lines)):
            code = _strip_comment(lines[i])
            depth += code.count("{") - code.count("}")
            if i > start or "{" in code:
                inside.add(i)
            if depth <= 0 and i > start:
                break
    return inside


def describe_mutant(contract, source, number, original: str, mutated: str) -> Mutant:
    a, b = original.splitlines(), mutated.splitlines()
    # A mutant changes one place: the lines between the common head and the common tail.
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    i1, i2, j1, j2 = head, len(a) - tail, head, len(b) - tail
    tag = "replace" if i2 > i1 and j2 > j1 else "insert" if j2 > j1 else "delete" if i2 > i1 else "equal"
    ops = [] if tag == "equal" else [(tag, i1, i2, j1, j2)]
    if not ops:
        return Mutant(contract, source, number, mutated, 0, "", "", "pruned", "identical to the original")
    tag, i1, i2, j1, j2 = ops[0]
    before = " / ".join(x.strip() for x in a[i1:i2]) or "(nothing)"
    after = " / ".join(x.strip() for x in b[j1:j2]) or "(line deleted)"
    mutant = Mutant(contract, source, number, mutated, i1 + 1, before, after)
    if len(ops) == 1 and tag == "replace" and i2 - i1 == j2 - j1:
        if all(
            _strip_comment(x) == _strip_comment(y) or (_is_comment(x) and _is_comment(y))
            for x, y in zip(a[i1:i2], b[j1:j2])
        ):
            mutant.outcome, mutant.reason = "pruned", "changes a comment only (not compiled)"
    elif len(ops) == 1 and tag == "insert" and all(x.strip() in ("break;", "continue;") for x in b[j1:j2]):
        mutant.before = a[i1 - 1].strip() if i1 else "(start)"
        mutant.after = mutant.before + " / " + after
        mutant.line = i1
        if i1 - 1 not in _loop_lines(a):
            mutant.outcome, mutant.reason = "pruned", "break/continue outside a loop (cannot compile)"
    elif len(ops) == 1 and tag == "delete" and all(_is_comment(x) for x in a[i1:i2]):
        mutant.outcome, mutant.reason = "pruned", "deletes a comment or blank line only (not compiled)"
    return mutant


def _code(text: str) -> str:
    """Source with whitespace that cannot matter removed: runs collapsed, none beside punctuation."""
    return re.sub(r"\s*([^\w\s])\s*", r"\1", " ".join(text.split()))


def generate(contract: str, source: str, workdir: Path) -> list[Mutant]:
    """universalmutator's mutants of `source` (noCheck: it writes them; this tool compiles each)."""
    out = workdir / "generated" / contract
    out.mkdir(parents=True, exist_ok=True)
    tool = shutil.which("mutate")
    cmd = [tool, str(ROOT / source), "solidity", "--noCheck", "--mutantDir", str(out)]
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if run.returncode != 0:
        raise MutateError(f"universalmutator failed on {source}: {run.stderr.strip()[-500:]}")
    original = (ROOT / source).read_text()
    mutants = []
    for path in out.glob("*.mutant.*.sol"):
        number = int(path.name.rsplit(".", 2)[-2])
        mutants.append(describe_mutant(contract, source, number, original, path.read_text()))
    mutants.sort(key=lambda m: m.number)
    # Two rules can write the same text: keep the first.
    unchanged = _code(original)
    seen = set()
    for m in mutants:
        code = _code(m.text)
        if not m.outcome and code == unchanged:
            m.outcome, m.reason = "pruned", "changes whitespace only"
        elif not m.outcome and code in seen:
            m.outcome, m.reason = "pruned", "same code as an earlier mutant (whitespace aside)"
        seen.add(code)
    return mutants


# -------------------------------------------------------------------------- equivalence list


def read_equivalents(path: Path = EQUIVALENT_FILE) -> dict[tuple[str, str, str], str]:
    """(contract, original line, mutated line) -> reason, from the tab-separated list."""
    known = {}
    if not path.exists():
        return known
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        parts = raw.split("\t")
        if len(parts) != 4 or not parts[3].strip():
            raise MutateError(f"{path.name}:{number}: expected contract<TAB>original<TAB>mutant<TAB>reason")
        known[(parts[0].strip(), parts[1].strip(), parts[2].strip())] = parts[3].strip()
    return known


# ------------------------------------------------------------------------------ the scratch


def _strip_metadata(code: str) -> str:
    """Bytecode hex without solc's CBOR metadata trailer (it hashes the source text, comments and all)."""
    code = code[2:] if code.startswith("0x") else code
    if len(code) < 4:
        return code
    length = int(code[-4:], 16)
    start = len(code) - 4 - 2 * length
    if start >= 0 and code[start : start + 2] in ("a1", "a2", "a3", "a4", "a5"):
        return code[:start]
    return code


class TypeChecker:
    """tools/mutate-check.cjs: the project's solcjs kept loaded, parsing and type-checking one mutant a
    time (a second or two, against some 15 s for a full rebuild). It only ever refuses: what passes is
    still compiled with `ape compile --force`."""

    def __init__(self):
        self.process = subprocess.Popen(
            ["node", str(ROOT / "tools" / "mutate-check.cjs")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.requests = 0

    def errors(self, source: str, text: str) -> list[str]:
        self.requests += 1
        self.process.stdin.write(json.dumps({"id": self.requests, "path": source, "content": text}) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise MutateError("the type-check screen (tools/mutate-check.cjs) stopped")
        reply = json.loads(answer)
        if reply["id"] != self.requests:
            raise MutateError("the type-check screen answered out of turn")
        return reply["errors"]

    def close(self):
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Scratch:
    """One throwaway copy of the project that a worker compiles and tests mutants in."""

    def __init__(self, base: Path, name: str):
        self.dir = base / name
        self.dir.mkdir(parents=True)
        for item in SCRATCH_FILES:
            src = ROOT / item
            if src.is_dir():
                shutil.copytree(src, self.dir / item, ignore=shutil.ignore_patterns("__pycache__", ".cache"))
            elif src.exists():
                shutil.copy2(src, self.dir / item)
        (self.dir / "node_modules").symlink_to(ROOT / "node_modules")
        # Its own ape data folder (a copy of the project's, with OpenZeppelin already fetched), so two
        # workers never write to one.
        shutil.copytree(ROOT / ".ape", self.dir / ".ape", symlinks=True)
        self.checker = None  # started on first use
        self.env = dict(os.environ)
        self.env.update(
            SOLCX_BINARY_PATH=str(ROOT / ".solcx"),
            APE_DATA_FOLDER=str(self.dir / ".ape"),
            PATH=f"{ROOT / '.venv' / 'bin'}:{ROOT / 'node_modules' / '.bin'}:{os.environ.get('PATH', '')}",
            PYTHONDONTWRITEBYTECODE="1",
        )

    def compile(self, timeout) -> tuple[bool, str]:
        run = subprocess.run(
            ["ape", "compile", "--force"], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        ok = run.returncode == 0 and "ERROR" not in run.stderr and (self.dir / ".build" / "__local__.json").exists()
        return ok, (run.stderr + run.stdout)

    def bytecodes(self) -> dict[str, tuple[str, str]]:
        manifest = json.loads((self.dir / ".build" / "__local__.json").read_text())
        codes = {}
        for name, ct in (manifest.get("contractTypes") or {}).items():
            deploy = (ct.get("deploymentBytecode") or {}).get("bytecode") or ""
            runtime = (ct.get("runtimeBytecode") or {}).get("bytecode") or ""
            codes[name] = (_strip_metadata(deploy), _strip_metadata(runtime))
        return codes

    def test(self, files, timeout) -> tuple[int | None, str]:
        cmd = ["ape", "test", *files, "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
        try:
            run = subprocess.run(
                cmd, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout, start_new_session=True
            )
        except subprocess.TimeoutExpired as timed_out:
            return None, str(timed_out.stdout or "")
        return run.returncode, run.stdout

    def write(self, source: str, text: str):
        (self.dir / source).write_text(text)

    def restore(self, source: str):
        shutil.copy2(ROOT / source, self.dir / source)
        self.clean()

    def clean(self):
        """Leaves no build behind for the next mutant to start from."""
        shutil.rmtree(self.dir / ".build", ignore_errors=True)


def _failed_test(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    return ""


# -------------------------------------------------------------------------------------- run


def parse_args(argv):
    p = argparse.ArgumentParser(prog="mutate", description=__doc__.split("\n\n")[0])
    p.add_argument("--contract", action="append", choices=sorted(TARGETS), help="only this contract (repeatable)")
    p.add_argument("--limit", type=int, help="run at most N mutants (the first N in source order)")
    p.add_argument("--sample", type=int, help="run N mutants of each contract, drawn at random (with --seed)")
    p.add_argument("--seed", type=int, default=18, help="seed for --sample (default 18)")
    p.add_argument("--jobs", "-j", type=int, default=2, help="mutants compiled and tested at once (default 2)")
    p.add_argument("--line", type=int, action="append", help="only mutants of this source line (repeatable)")
    p.add_argument(
        "--timeout",
        type=int,
        default=0,
        help="seconds one mutant's tests may take (default: 3x the unmutated run + 60 s)",
    )
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip running the tests on the unmutated contracts first (they must pass)",
    )
    p.add_argument("--list", action="store_true", help="only generate and list the mutants that would run")
    p.add_argument("--report", type=Path, default=REPORT_DIR, help="folder for report.md and report.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if not shutil.which("mutate"):
        raise MutateError("universalmutator not installed: run make mutate (installs it)")
    if not (ROOT / ".build" / "__local__.json").exists() or not (ROOT / ".ape").is_dir():
        raise MutateError("the project is not compiled: run make compile first (make mutate does)")
    if args.jobs < 1:
        raise MutateError("--jobs must be at least 1")
    contracts = args.contract or list(TARGETS)
    equivalents = read_equivalents()

    base = Path(tempfile.mkdtemp(prefix="rxchain-mutate-"))
    try:
        mutants = []
        for name in contracts:
            mutants += generate(name, TARGETS[name][0], base)
        generated = len(mutants)
        candidates = [m for m in mutants if not m.outcome and (not args.line or m.line in args.line)]
        candidate_ids = {id(m) for m in candidates}
        skipped_by_choice = [m for m in mutants if not m.outcome and id(m) not in candidate_ids]
        if args.sample is not None:
            draw, chosen = random.Random(args.seed), []
            for name in contracts:
                of_contract = [m for m in candidates if m.contract == name]
                chosen += sorted(draw.sample(of_contract, min(args.sample, len(of_contract))), key=lambda m: m.number)
        else:
            chosen = candidates[: args.limit] if args.limit is not None else candidates
        chosen_ids = {id(m) for m in chosen}
        not_run = [m for m in candidates if id(m) not in chosen_ids] + skipped_by_choice
        if args.list:
            for m in chosen:
                print(f"{m.number}\t{m.describe()}")
            print(
                json.dumps(
                    {
                        "generated": generated,
                        "pruned": generated - len(candidates) - len(skipped_by_choice),
                        "would_run": len(chosen),
                    }
                )
            )
            return 0

        scratches: queue.Queue[Scratch] = queue.Queue()
        for i in range(args.jobs):
            scratches.put(Scratch(base, f"w{i}"))
        log_lock = threading.Lock()

        def log(message):
            with log_lock:
                print(message, file=sys.stderr, flush=True)

        # The unmutated build: its bytecode is what "equivalent" compares with, and its tests must pass.
        reference = scratches.get()
        ok, output = reference.compile(timeout=900)
        if not ok:
            raise MutateError(f"the unmutated contracts do not compile in the scratch copy:\n{output[-2000:]}")
        original_code = reference.bytecodes()
        scratches.put(reference)

        # One unmutated run of every file any chosen mutant will run (a file passing there passes in
        # any subset: each test module deploys its own contracts).
        union = []
        for m in chosen:
            union += [f for f in TARGETS[m.contract][1] if f not in union]
        test_sets = [tuple(union)] if union else []
        baseline_seconds = {}
        if not args.no_baseline and chosen:

            def baseline(files):
                scratch = scratches.get()
                try:
                    ok, output = scratch.compile(timeout=900)
                    if not ok:
                        raise MutateError(f"the unmutated contracts do not compile:\n{output[-2000:]}")
                    t0 = time.monotonic()
                    rc, output = scratch.test(list(files), timeout=3600)
                    if rc != 0:
                        raise MutateError(
                            f"the tests fail on the unmutated contracts ({' '.join(files)}):\n{output[-3000:]}"
                        )
                    baseline_seconds[files] = time.monotonic() - t0
                    log(f"mutate: baseline {len(files)} test files pass in {baseline_seconds[files]:.0f} s")
                finally:
                    scratch.clean()
                    scratches.put(scratch)

            for files in test_sets:
                baseline(files)

        def timeout_for(files):
            if args.timeout:
                return args.timeout
            return int(3 * baseline_seconds.get(tuple(union), 300) + 60)

        done = [0]

        def run_one(m: Mutant):
            scratch = scratches.get()
            t0 = time.monotonic()
            try:
                if scratch.checker is None:
                    scratch.checker = TypeChecker()
                errors = scratch.checker.errors(m.source, m.text)
                if errors:
                    m.outcome, m.reason = "did-not-compile", "type-check: " + errors[0][:160]
                    return
                scratch.write(m.source, m.text)
                try:
                    ok, output = scratch.compile(timeout=900)
                except subprocess.TimeoutExpired:
                    ok, output = False, "compile timed out"
                if not ok:
                    m.outcome = "did-not-compile"
                    error = next((line.strip() for line in output.splitlines() if "Error" in line), "")
                    m.reason = error[:160] or "compile failed"
                elif scratch.bytecodes() == original_code:
                    m.outcome, m.reason = "equivalent", "bytecode-identical to the original (metadata aside)"
                else:
                    files = TARGETS[m.contract][1]
                    rc, output = scratch.test(files, timeout_for(files))
                    if rc is None:
                        m.outcome, m.reason = "killed", "the tests timed out"
                    elif rc == 0:
                        if m.key in equivalents:
                            m.outcome, m.reason = "equivalent", equivalents[m.key]
                        else:
                            m.outcome, m.reason = "survived", "every covering test passed"
                    elif rc == 1:
                        m.outcome, m.reason = "killed", _failed_test(output) or "a test failed"
                    else:
                        m.outcome, m.reason = "error", f"pytest exit status {rc}: " + output.strip()[-300:]
            except Exception as exc:  # reported per mutant, never silently
                m.outcome, m.reason = "error", f"{type(exc).__name__}: {exc}"
            finally:
                scratch.restore(m.source)
                scratches.put(scratch)
                m.seconds = time.monotonic() - t0
                done[0] += 1
                log(f"mutate: [{done[0]}/{len(chosen)}] {m.outcome:15} {m.describe()}  ({m.seconds:.0f} s) {m.reason}")

        try:
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(run_one, chosen))
        finally:
            while not scratches.empty():
                scratch = scratches.get()
                if scratch.checker is not None:
                    scratch.checker.close()

        elapsed = time.monotonic() - started
        summary = write_report(args, mutants, chosen, not_run, generated, elapsed, baseline_seconds)
        print(json.dumps(summary))
        return 1 if summary["survived"] or summary["errors"] else 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def write_report(args, mutants, chosen, not_run, generated, elapsed, baseline_seconds):
    count = lambda outcome: sum(1 for m in chosen if m.outcome == outcome)
    pruned = [m for m in mutants if m.outcome == "pruned"]
    killed, survived = count("killed"), count("survived")
    summary = {
        "contracts": args.contract or list(TARGETS),
        "generated": generated,
        "pruned": len(pruned),
        "not_run": len(not_run),
        "run": len(chosen),
        "did_not_compile": count("did-not-compile"),
        "equivalent": count("equivalent"),
        "killed": killed,
        "survived": survived,
        "errors": count("error"),
        "score": round(killed / (killed + survived), 4) if killed + survived else None,
        "seconds": round(elapsed),
        "jobs": args.jobs,
        "selection": ("sample %d per contract, seed %d" % (args.sample, args.seed))
        if args.sample is not None
        else ("first %d" % args.limit)
        if args.limit is not None
        else "all",
        "report": str(args.report / "report.md"),
    }
    args.report.mkdir(parents=True, exist_ok=True)
    rows = [{k: v for k, v in dataclasses.asdict(m).items() if k != "text"} for m in mutants]
    (args.report / "report.json").write_text(json.dumps({"summary": summary, "mutants": rows}, indent=1))

    lines = ["# Mutation testing report", "", "```json", json.dumps(summary, indent=1), "```", ""]
    if baseline_seconds:
        lines += [
            "Unmutated test runs: " + ", ".join(f"{len(f)} files {s:.0f} s" for f, s in baseline_seconds.items()),
            "",
        ]
    for outcome, title in [
        ("survived", "Survived (a gap in the tests)"),
        ("error", "Errors"),
        ("equivalent", "Equivalent"),
        ("did-not-compile", "Did not compile"),
        ("killed", "Killed"),
    ]:
        chosen_of = [m for m in chosen if m.outcome == outcome]
        lines += [f"## {title}: {len(chosen_of)}", ""]
        lines += [f"- {m.describe()} (#{m.number}, {m.seconds:.0f} s): {m.reason}" for m in chosen_of]
        lines.append("")
    reasons = {}
    for m in pruned:
        reasons[m.reason] = reasons.get(m.reason, 0) + 1
    lines += [f"## Pruned before compiling: {len(pruned)}", ""]
    lines += [f"- {n} x {reason}" for reason, n in sorted(reasons.items())]
    lines += ["", "Each pruned mutant:", ""]
    lines += [f"- {m.describe()} (#{m.number}): {m.reason}" for m in pruned]
    lines += ["", f"## Not run in this selection: {len(not_run)}", ""]
    (args.report / "report.md").write_text("\n".join(lines) + "\n")
    return summary


def _stop(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)  # the scratch folders go with the run, however it is stopped
    signal.signal(signal.SIGINT, _stop)
    try:
        sys.exit(main())
    except MutateError as exc:
        print(f"mutate: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("mutate: interrupted (the real contracts were never changed)", file=sys.stderr)
        sys.exit(130)
