"""Fault suite, long version: faults injected in turn, sessions scored per fault.

Starts, on free loopback ports, a private PostgreSQL cluster, a private Mosquitto
(persistence on), a TCP relay between Odoo and the broker, two Odoo servers on one
database (threaded and --workers=2, both loading ows_iot server-wide), a recorder of
the broker's traffic and the simulator (three Gen2 meters, one Gen1 plug). Injects
the faults one after the other, then compares the database's sessions with the
recording replayed offline. Prints, per fault and in total:

    fault=<name> E=.. M=.. L=.. D=.. W=.. X=.. gen1: E=.. M=.. L=.. D=.. W=.. X=..

E expected sessions (the replay's), M matched, L lost, D duplicated, W wrong seconds,
X extra; first for the devices with a clock (Gen2), then for the Gen1 plug. A session
counts for the first fault it overlaps (from injection to recovery, plus 2 s);
``fault=none`` holds the sessions no fault touched.

    python bench/faults.py [--faults LIST] [--short] [--template DB] [--keep]

Needs Odoo 18 (importable), PostgreSQL (OWS_IOT_DB_HOST/PORT/USER/PASSWORD, to hold
the installed template) with its server binaries (initdb, pg_ctl), and mosquitto.
Exit status: 0 when every Gen2 session matched and every Gen1 mismatch is a session
the database marks as of delayed timing, 1 otherwise, 2 when something needed is
missing or the run could not be set up.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# ows_iot/tests/__init__.py is Odoo's test package (it imports Odoo); the end-to-end
# helpers live beside it and need none of it.
if "ows_iot.tests" not in sys.modules:
    _package = types.ModuleType("ows_iot.tests")
    _package.__path__ = [str(REPO / "ows_iot" / "tests")]
    sys.modules["ows_iot.tests"] = _package

import pytest  # noqa: E402  (the harness reports through pytest's outcome exceptions)

from ows_iot.tests.e2e import fault_scenario  # noqa: E402
from ows_iot.tests.e2e.harness import (  # noqa: E402
    _pg_bindir,
    drop_database,
    install_template,
    mosquitto_binary,
    odoo_missing,
    pg_available,
    query,
    unique_name,
)

EPILOG = """\
faults (--faults, comma-separated, in order; DURATION in seconds):
{kinds}

default (--faults): {long}
--short (the CI version): {short}

examples:
  python bench/faults.py
  python bench/faults.py --short
  python bench/faults.py --faults leader-kill,odoo-down:60 --template ows_e2e_tmpl_0123456789
"""


def build_parser() -> argparse.ArgumentParser:
    kinds = "\n".join(
        f"  {kind + (':DURATION' if kind in fault_scenario.NEEDS_DURATION else ''):<24}{text}"
        for kind, text in fault_scenario.KINDS.items()
    )
    parser = argparse.ArgumentParser(
        prog="python bench/faults.py",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG.format(kinds=kinds, long=fault_scenario.LONG, short=fault_scenario.SHORT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--faults", help="the faults to inject (default: the long list)")
    parser.add_argument("--short", action="store_true", help="the short list of the CI test")
    parser.add_argument(
        "--template", metavar="DB", help="an installed ows_iot database to copy (default: install)"
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=1.0,
        metavar="S",
        help="quiet seconds at least before each fault, which then strikes 5 s into the "
        "next loop of the devices' 20 s profile (default: 1)",
    )
    parser.add_argument(
        "--recovery-timeout",
        type=float,
        default=90.0,
        metavar="S",
        help="longest wait for new readings to be committed after a fault (default: 90)",
    )
    parser.add_argument(
        "--clean-end",
        action="store_true",
        help="stop the devices between sessions (default: mid-session, last wills end them)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and the recording")
    parser.add_argument(
        "--details", action="store_true", help="list every session that did not match"
    )
    return parser


def missing() -> str | None:
    if mosquitto_binary() is None:
        return "mosquitto is not installed (apt-get install mosquitto)"
    if _pg_bindir() is None:
        return "the PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    return odoo_missing() or pg_available()


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        faults = fault_scenario.parse_faults(
            args.faults or (fault_scenario.SHORT if args.short else fault_scenario.LONG)
        )
    except ValueError as exc:
        note(f"faults: {exc}")
        return 2
    reason = missing()
    if reason:
        note(f"faults: {reason}")
        return 2
    if args.template and not query(
        "postgres", "SELECT 1 FROM pg_database WHERE datname = %s", [args.template]
    ):
        note(f"faults: no database {args.template!r} to copy")
        return 2
    work = Path(tempfile.mkdtemp(prefix="ows-bench-faults-"))
    template = args.template
    installed = None
    began = time.monotonic()
    try:
        if template is None:
            installed = template = unique_name("ows_bench_faults")
            note("installing ows_iot into a fresh database ...")
            install_template(template, work / "data", work / "install.log")
        note(f"faults: {', '.join(f.name for f in faults)}")
        result = fault_scenario.run_fault_suite(
            template,
            work / "run",
            faults,
            progress=note,
            gap_s=args.gap,
            recovery_timeout_s=args.recovery_timeout,
            end_mid_session=not args.clean_end,
        )
    except KeyboardInterrupt:
        note("faults: interrupted")
        return 130
    except (pytest.fail.Exception, pytest.skip.Exception) as exc:
        note(f"faults: {exc}")
        note(f"faults: logs in {work}")
        args.keep = True
        return 2
    finally:
        if installed:
            drop_database(installed)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for line in result.lines():
        print(line)
    for line in result.notes():
        print(f"  {line}")
    if args.details:
        for label, tallies in (("gen2", result.clocked), ("gen1", result.unclocked)):
            for name, tally in tallies.items():
                for problem in tally.problems():
                    print(f"  {label} {name}: {problem}")
    print(
        f"recorded {result.recorded} messages; run took {time.monotonic() - began:.0f} s"
        + (f"; logs in {work}" if args.keep else "")
    )
    exact = result.total(result.clocked).clean and result.total(result.unclocked).admitted
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
