#!/usr/bin/env python3
"""Helpers of scripts/run-tests: count, filter and summarise test results.

Standard library only, so it runs before any dependency is installed.

    testsummary.py count-odoo-tests TESTS_DIR
    testsummary.py junit REPORT.xml
    testsummary.py odoo-progress LOGFILE          (stdin: Odoo's output)
    testsummary.py odoo-summary LOGFILE --db DB --addon ADDON --expected N --exit-code RC

Commands that produce counts write one shell-evaluable line
(``passed=N failed=N skipped=N``) to the file named by --counts; what is meant for
people goes to stdout, warnings to stderr.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

# Odoo's log format (odoo/netsvc.py DBFormatter):
#   %(asctime)s %(pid)s %(levelname)s %(dbname)s %(name)s: %(message)s %(perf_info)s
# Continuation lines (tracebacks, multi-line messages) do not match and belong to the
# record above them.
RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL|\?) (?P<db>\S+) (?P<logger>[^\s:]+): "
    r"(?P<message>.*)$"
)
# odoo/service/server.py ThreadedServer.run(), after --stop-after-init with --test-enable,
# with str(OdooTestResult) from odoo/tests/result.py:
#   "<F> failed, <E> error(s) of <N> tests when loading database '<db>'"
# logged INFO when all passed, WARNING when no test ran, ERROR otherwise.
TOTALS = re.compile(
    r"^(?P<failed>\d+) failed, (?P<errors>\d+) error\(s\) of (?P<run>\d+) tests "
    r"when loading database '(?P<db>[^']*)'"
)
# odoo/tests/result.py OdooTestResult.log_stats(), logger odoo.tests.stats:
#   "<module>: <N> tests <T>s <Q> queries"
MODULE_STATS = re.compile(r"^(?P<module>\w+): (?P<run>\d+) tests [\d.]+s \d+ queries")
# OdooTestResult.logError(): "FAIL: Class.method\n<traceback>" / "ERROR: ..." at ERROR level.
TEST_PROBLEM = re.compile(r"^(?P<kind>FAIL|ERROR): (?P<test>\S+)")
# OdooTestResult.addSkip(): "skipped Class.method : reason" at INFO level.
# A setUpClass that raises SkipTest logs "skipped setUpClass (module.Class) : reason"
# once, and its tests are neither started nor counted in the totals.
TEST_SKIP = re.compile(r"^skipped (?P<test>.+?) : (?P<reason>.*)$")
TEST_START = re.compile(r"^Starting (?P<test>\S+) \.\.\.")
MILESTONES = (
    re.compile(r"^loading \d+ modules"),
    re.compile(r"^\d+ modules loaded in"),
    re.compile(r"^Modules loaded\.$"),
    re.compile(r"^Starting post tests$"),
    # Before browser tests Odoo builds every asset bundle: minutes of silence otherwise.
    re.compile(r"^Pregenerating assets bundles"),
    re.compile(r"^\w+ Assets bundles generated in"),
    re.compile(r"^\d+ post-tests in"),
    re.compile(r"^Initiating shutdown"),
)
# Python's own error output (before Odoo's logging is set up).
STARTUP_ERROR = re.compile(r"^(Traceback \(most recent call last\):|\w+(Error|Exception)\b)")
# ERROR records that only restate test failures already counted.
CONSEQUENCES = {
    "odoo.modules.loading": (
        re.compile(r"^Module \w+: \d+ failures, \d+ errors of \d+ tests$"),
        re.compile(r"^At least one test failed when loading the modules\.$"),
    ),
    "odoo.tests.result": (TOTALS,),
}
TEST_DEF = re.compile(r"^\s*def (test\w*)\s*\(", re.MULTILINE)


def say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def write_counts(path: str, passed: int, failed: int, skipped: int) -> None:
    Path(path).write_text(f"passed={passed} failed={failed} skipped={skipped}\n", encoding="utf-8")


def shorten(text: str, width: int = 220) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------- static count


def count_odoo_tests(tests_dir: Path) -> tuple[int, int, list[str]]:
    """Count test methods in tests_dir/test_*.py and list files Odoo would not load.

    Odoo only runs test modules that tests/__init__.py imports (odoo/tests/loader.py
    takes the test_* submodules of the imported package), so a test file missing
    there is silently ignored by Odoo.
    """
    files = sorted(tests_dir.glob("test_*.py"))
    count = sum(
        len(TEST_DEF.findall(f.read_text(encoding="utf-8", errors="replace"))) for f in files
    )
    init = tests_dir / "__init__.py"
    init_text = init.read_text(encoding="utf-8", errors="replace") if init.exists() else ""
    not_imported = [f.name for f in files if not re.search(rf"\b{re.escape(f.stem)}\b", init_text)]
    return count, len(files), not_imported


def cmd_count_odoo_tests(args: argparse.Namespace) -> int:
    count, files, not_imported = count_odoo_tests(Path(args.tests_dir))
    if files and not (Path(args.tests_dir) / "__init__.py").exists():
        warn(
            f"WARNING: {args.tests_dir}/__init__.py is missing; "
            f"Odoo will run none of the {files} test file(s) there."
        )
        not_imported = []
    for name in not_imported:
        warn(
            f"WARNING: {args.tests_dir}/{name} is not imported in {args.tests_dir}/__init__.py; "
            "Odoo will not run its tests."
        )
    print(f"odoo_test_count={count} odoo_test_files={files}")
    return 0


# ---------------------------------------------------------------------- pytest


def cmd_junit(args: argparse.Namespace) -> int:
    path = Path(args.report)
    if not path.exists() or path.stat().st_size == 0:
        write_counts(args.counts, 0, 0, 0)
        return 0
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        warn(f"cannot read pytest's report {path}: {exc}")
        write_counts(args.counts, 0, 1, 0)
        return 0
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failures = errors = skipped = 0
    reasons: Counter[str] = Counter()
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failures += int(suite.get("failures", 0))
        errors += int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
        for node in suite.iter("skipped"):
            # pytest's junit report files expected failures (xfail) as skipped too.
            label = "expected failure: " if node.get("type") == "pytest.xfail" else ""
            reasons[label + shorten(node.get("message") or "no reason given", 160)] += 1
    if skipped:
        say(f"pytest skipped {skipped} test(s):")
        for reason, n in reasons.most_common(10):
            say(f"  {n:4d} × {reason}")
        if len(reasons) > 10:
            say(f"  ... and {len(reasons) - 10} other reason(s)")
    passed = max(0, tests - failures - errors - skipped)
    write_counts(args.counts, passed, failures + errors, skipped)
    return 0


# ------------------------------------------------------------------ Odoo's log


class Record:
    __slots__ = ("first", "level", "logger", "message", "more")

    def __init__(self, level: str, logger: str, message: str, first: str) -> None:
        self.level = level
        self.logger = logger
        self.message = message
        self.first = first
        self.more: list[str] = []


def read_records(lines) -> list[Record]:
    """Group Odoo's output into log records.

    Output that is not a log record is attached to the record above it, except:
    - "Exception in thread ...": an uncaught exception in a thread, printed by Python
      itself, which becomes a CRITICAL record of its own;
    - anything before the first record (e.g. "Running as user 'root' is a security
      risk."), which only counts when it is a Python error: a crash at startup.
    """
    records: list[Record] = []
    preamble: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        match = RECORD.match(line)
        if match:
            records.append(Record(match["level"], match["logger"], match["message"].rstrip(), line))
        elif line.startswith("Exception in thread "):
            records.append(Record("CRITICAL", "python", line, line))
        elif records:
            records[-1].more.append(line)
        elif line.strip():
            preamble.append(line)
    if any(STARTUP_ERROR.match(line) for line in preamble):
        crash = Record("CRITICAL", "startup", preamble[-1], preamble[0])
        crash.more = preamble
        records.insert(0, crash)
    return records


def cmd_odoo_progress(args: argparse.Namespace) -> int:
    """Copy Odoo's output to the log file and show the lines worth watching."""
    verbose = args.verbose
    started = time.monotonic()
    last_shown = [started]
    lines_seen = [0]
    done = threading.Event()
    lock = threading.Lock()

    def show(text: str) -> None:
        with lock:
            print(text, flush=True)
            last_shown[0] = time.monotonic()

    def heartbeat() -> None:
        # Installing Odoo's base modules is silent for minutes at this filter's level.
        while not done.wait(5):
            now = time.monotonic()
            if now - last_shown[0] >= 30:
                elapsed = int(now - started)
                show(
                    f"  ... Odoo still running ({elapsed // 60}m{elapsed % 60:02d}s, "
                    f"{lines_seen[0]} log lines)"
                )

    threading.Thread(target=heartbeat, daemon=True).start()
    addon_prefix = f"odoo.addons.{args.addon}."
    # The end of a traceback says what went wrong: keep the lines that follow an
    # ERROR/CRITICAL record and show the last of them when the next record starts.
    trace: list[str] = []
    tracing = False

    def flush_trace() -> None:
        if len(trace) > 8:
            show(f"      ... ({len(trace) - 8} lines, see the log)")
        for kept in trace[-8:]:
            show("      " + shorten(kept))
        trace.clear()

    with open(args.logfile, "w", encoding="utf-8") as log:
        for raw in sys.stdin:
            log.write(raw)
            log.flush()
            lines_seen[0] += 1
            line = raw.rstrip("\n")
            if verbose:
                show(line)
                continue
            match = RECORD.match(line)
            if not match:
                if line.startswith("Exception in thread "):
                    flush_trace()
                    show(f"  CRITICAL: {shorten(line)}")
                    tracing = True
                elif tracing and line.strip():
                    trace.append(line)
                continue
            flush_trace()
            tracing = False
            level, logger, message = match["level"], match["logger"], match["message"].rstrip()
            if level in ("ERROR", "CRITICAL"):
                show(f"  {level}: {logger}: {shorten(message)}")
                tracing = True
            elif level == "WARNING":
                show(f"  WARNING: {logger}: {shorten(message)}")
            elif logger.startswith(addon_prefix) and TEST_START.match(message):
                show(f"  test {TEST_START.match(message)['test']}")
            elif logger.startswith(addon_prefix) and TEST_SKIP.match(message):
                show(f"  skipped {shorten(message[len('skipped ') :])}")
            elif any(m.match(message) for m in MILESTONES) or TOTALS.match(message):
                show(f"  {message}")
        flush_trace()
    done.set()
    return 0


def cmd_odoo_summary(args: argparse.Namespace) -> int:
    """Decide whether the Odoo run passed, and explain why not."""
    path = Path(args.logfile)
    text_lines = (
        path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
    )
    records = read_records(text_lines)

    totals = None
    module_run = None
    problems: list[Record] = []  # FAIL:/ERROR: records of tests
    skips: list[tuple[str, str]] = []
    bad_records: list[Record] = []  # every ERROR/CRITICAL record
    for rec in records:
        if rec.level in ("ERROR", "CRITICAL"):
            bad_records.append(rec)
        if rec.logger == "odoo.tests.result":
            match = TOTALS.match(rec.message)
            if match and match["db"] == args.db:
                totals = match
        elif rec.logger == "odoo.tests.stats":
            match = MODULE_STATS.match(rec.message)
            if match and match["module"] == args.addon:
                module_run = int(match["run"])
        elif rec.logger.startswith("odoo.addons."):
            match = TEST_PROBLEM.match(rec.message)
            if match and rec.level == "ERROR":
                problems.append(rec)
                continue
            match = TEST_SKIP.match(rec.message)
            if match:
                skips.append((match["test"], match["reason"]))

    run = int(totals["run"]) if totals else 0
    failed = int(totals["failed"]) + int(totals["errors"]) if totals else 0
    # Without the totals line, fall back to what the log shows test by test.
    if totals is None:
        failed = len(problems)
        run = module_run or 0
    skipped = len(skips)
    skipped_in_run = sum(1 for test, _ in skips if not test.startswith("setUpClass"))
    passed = max(0, run - failed - skipped_in_run)

    reasons: list[str] = []
    if args.exit_code != 0:
        reasons.append(
            f"Odoo exited with status {args.exit_code}"
            + (" (time limit reached)" if args.exit_code in (124, 137) else "")
        )
    if totals is None:
        reasons.append(
            "Odoo printed no test totals ('... tests when loading database'): "
            "it stopped before running the tests"
        )
    if failed:
        reasons.append(f"{failed} Odoo test(s) failed or raised an error")
    other_errors = [
        r
        for r in bad_records
        if r not in problems
        and not (failed and any(p.match(r.message) for p in CONSEQUENCES.get(r.logger, ())))
    ]
    if other_errors and not failed:
        reasons.append(f"{len(other_errors)} ERROR/CRITICAL log line(s)")
    elif other_errors:
        reasons.append(f"{len(other_errors)} further ERROR/CRITICAL log line(s)")
    if args.expected > 0 and run == 0 and totals is not None:
        reasons.append(
            f"Odoo ran no tests although {args.addon}/tests/test_*.py define {args.expected} "
            f"(is each test file imported in {args.addon}/tests/__init__.py?)"
        )

    say("")
    say(
        f"Odoo tests of {args.addon}: {run} run, {passed} passed, {failed} failed, "
        f"{skipped} skipped ({args.expected} test methods found in the sources)"
    )
    if 0 < run < args.expected:
        say(
            f"  note: fewer tests ran than test methods exist ({run} < {args.expected}); "
            "check that every test file is imported and its classes are tagged to run."
        )
    if skips:
        say("  skipped:")
        for test, reason in skips[:15]:
            say(f"    {test}: {shorten(reason, 160)}")
    if problems:
        say("  failed:")
        for rec in problems[:30]:
            say(f"    {rec.message}")
    details = [r for r in bad_records if r in problems or r in other_errors]
    for rec in details[:25]:
        say(f"  {rec.level} {rec.logger}: {shorten(rec.message)}")
        for extra in rec.more[-10:]:
            say(f"      {shorten(extra)}")
    if len(details) > 25:
        say(f"  ... {len(details) - 25} more ERROR/CRITICAL record(s) in {path}")

    if reasons:
        say("Odoo run FAILED: " + "; ".join(reasons) + f". Full log: {path}")
        # A broken run with no failed test still has to show up as a failure.
        failed = max(failed, 1)
    write_counts(args.counts, passed, failed, skipped)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("count-odoo-tests")
    p.add_argument("tests_dir")
    p.set_defaults(func=cmd_count_odoo_tests)

    p = sub.add_parser("junit")
    p.add_argument("report")
    p.add_argument("--counts", required=True)
    p.set_defaults(func=cmd_junit)

    p = sub.add_parser("odoo-progress")
    p.add_argument("logfile")
    p.add_argument("--addon", required=True)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=cmd_odoo_progress)

    p = sub.add_parser("odoo-summary")
    p.add_argument("logfile")
    p.add_argument("--db", required=True)
    p.add_argument("--addon", required=True)
    p.add_argument("--expected", type=int, default=0)
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--counts", required=True)
    p.set_defaults(func=cmd_odoo_summary)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
