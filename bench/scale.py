"""Many databases on one server: connections, idle CPU and memory of the runtime.

One prefork Odoo server (``--workers 4``, ``--load=base,web,ows_iot``) serves D
databases (``--db-filter`` matching exactly those), each with ``ows_iot``, its
own broker client id and ``--devices`` devices, on a private PostgreSQL cluster
(``max_connections`` 800, so that the baseline's connections fit) and a private
Mosquitto. For each D of ``--dbs`` and each runtime — ``off``
(``OWS_IOT_RUNTIME=0``), ``before`` (the runtime of ``--baseline``, default
``main``: a candidate per database in every worker) and ``after`` (this tree:
one watcher per worker) — it waits until every database has a leader and the
leadership settled, then measures for ``--idle`` seconds without messages:

- the PostgreSQL connections of the HTTP workers: the runtime's own (watchers,
  lock connections: ``ows_iot ...``), the workers' pools (``odoo-<pid>``) and
  the total;
- the most databases one worker leads (the spread) and the threads per worker;
- idle CPU: the HTTP workers and their PostgreSQL backends, in % of one core;
- the largest virtual size and resident size of an HTTP worker (``limit_memory_soft``
  counts the virtual size; Odoo's default is 2048 MiB).

    python bench/scale.py [--dbs 1,10,50] [--devices 2] [--idle 20] [--template DB]
                          [--baseline REF | --no-baseline]

Needs Odoo 18 (importable), PostgreSQL server binaries (initdb, pg_ctl), mosquitto
and git (for the baseline).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ows_iot.services.watch import LOCKS_SQL, parse_snapshot  # noqa: E402
from ows_iot.tests.e2e.harness import (  # noqa: E402
    Mosquitto,
    OdooServer,
    ThrowawayPostgres,
    addons_path,
    drop_database,
    install_template,
    odoo_missing,
    pg_available,
    pg_connect,
    query,
    unique_name,
    wait_until,
)
from ows_iot.tests.e2e.scenario import configure_broker, device_values  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from failover import baseline_addons  # noqa: E402

import ows_iot.tests.e2e.harness as harness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
_odoo_command = harness.odoo_command


def _without_default_database(dbname, data_dir, *args, **kwargs):
    """No ``-d``: the server serves what ``--db-filter`` matches, and preloads nothing
    (the baseline runtime would serve the ``-d`` database alone)."""
    command = _odoo_command(dbname, data_dir, *args, **kwargs)
    index = command.index("-d")
    del command[index : index + 2]
    return command


harness.odoo_command = _without_default_database
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def memory(pid: int) -> tuple[int, int, int]:
    """(virtual size, resident size, threads) of a process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0, 0
    values = dict(re.findall(r"^(VmSize|VmRSS|Threads):\s+(\d+)", status, re.M))
    return (
        int(values.get("VmSize", 0)) * 1024,
        int(values.get("VmRSS", 0)) * 1024,
        int(values.get("Threads", 0)),
    )


def http_workers(server) -> list[int]:
    pids = {int(p) for p in re.findall(r"Worker WorkerHTTP \((\d+)\) alive", server.text())}
    return sorted(pids & set(server.children()))


def worker_connections(pg, pids):
    """(backend pid, kind, database) of the connections the HTTP workers hold."""
    rows = query("postgres", "SELECT pid, datname, application_name FROM pg_stat_activity", **pg)
    found = []
    for backend, datname, app in rows:
        match = re.search(r"(?:^odoo-| pid )(\d+)", app or "")
        if match and int(match.group(1)) in pids:
            kind = "runtime" if (app or "").startswith("ows_iot ") else "pool"
            found.append((backend, kind, datname))
    return found


def leaders(pg, dbs):
    held = parse_snapshot(query("postgres", LOCKS_SQL, **pg), []).held
    return {db: held[db] for db in dbs if db in held}


def measure(label, dbs, cluster, pg, work, args, addons, mode):
    os.environ["OWS_IOT_ADDONS_PATH"] = addons
    env = {"OWS_IOT_RUNTIME": "0"} if mode == "off" else {}
    dbfilter = "^(" + "|".join(re.escape(db) for db in dbs) + ")$"
    server = OdooServer(
        dbs[0], work / f"{label}-{len(dbs)}", workers=args.workers, env=env,
        db_port=cluster.port,
        args=("--load=base,web,ows_iot", "--db_user", pg["user"], f"--db-filter={dbfilter}",
              "--limit-time-real=100000", "--limit-time-cpu=100000"),
    ).start()  # fmt: skip
    started = time.monotonic()
    try:
        if mode != "off":
            wait_until(lambda: len(leaders(pg, dbs)) == len(dbs), 600, "a leader for every db", 1)
        led_s = time.monotonic() - started
        # Settled: the baseline's candidates have all connected, the watchers handed back.
        stable, last = 0, None
        while stable < 3 and time.monotonic() - started < 120:
            time.sleep(2)
            now = leaders(pg, dbs)
            stable = stable + 1 if now == last else 0
            last = now
        workers = http_workers(server)
        conns = worker_connections(pg, set(workers))
        backends = [backend for backend, *_ in conns]
        before_cpu = sum(cpu_ticks(p) for p in workers + backends)
        time.sleep(args.idle)
        after_cpu = sum(cpu_ticks(p) for p in workers + backends)
        cpu = (after_cpu - before_cpu) / CLK_TCK / args.idle * 100
        conns = worker_connections(pg, set(workers))
        mems = [memory(p) for p in workers]
        per_worker = {}
        for holder in (last or {}).values():
            per_worker[holder] = per_worker.get(holder, 0) + 1
        return {
            "label": label,
            "dbs": len(dbs),
            "runtime": sum(1 for _, kind, _ in conns if kind == "runtime"),
            "pool": sum(1 for _, kind, _ in conns if kind == "pool"),
            "total": len(conns),
            "max_led": max(per_worker.values(), default=0),
            "threads": max((m[2] for m in mems), default=0),
            "cpu": cpu,
            "vms": max((m[0] for m in mems), default=0) / 2**20,
            "rss": max((m[1] for m in mems), default=0) / 2**20,
            "led_s": led_s,
        }
    finally:
        server.stop(120)
        os.environ.pop("OWS_IOT_ADDONS_PATH", None)


def prepare(cluster, pg, broker, template, count, devices, work):
    """``count`` databases with ``devices`` devices each, copied inside the cluster."""
    base = unique_name("ows_bench_scale")
    cluster.copy_from(template, f"{base}_t")
    seed = OdooServer(
        f"{base}_t", work / "seed", db_port=cluster.port, env={"OWS_IOT_RUNTIME": "0"},
        args=("--db_user", pg["user"]),
    ).start()  # fmt: skip
    try:
        seed.rpc(
            "mqtt.device", "create",
            [device_values(f"shellypmminig3-scale{i:06d}") for i in range(devices)],
        )  # fmt: skip
    finally:
        seed.stop()
    names = [f"{base}_{i:03d}" for i in range(count)]
    conn = pg_connect(**pg)
    try:
        with conn.cursor() as cr:
            for name in names:
                cr.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base}_t"')
    finally:
        conn.close()
    for i, name in enumerate(names):
        configure_broker(name, broker, client_id=f"ows-bench-scale-{i}", connect=pg)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", default="1,10,50")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--template", help="an installed ows_iot database to copy")
    parser.add_argument("--baseline", default="main", help="git ref of the runtime to compare")
    parser.add_argument("--no-baseline", action="store_true", help="this tree only")
    parser.add_argument("--no-off", action="store_true", help="skip the runtime-off rows")
    args = parser.parse_args()
    reason = odoo_missing() or pg_available()
    if reason:
        print(f"scale: {reason}", file=sys.stderr)
        return 2
    counts = sorted({int(n) for n in args.dbs.split(",")})
    work = Path(tempfile.mkdtemp(prefix="ows-bench-scale-"))
    broker = Mosquitto(work / "broker").start()
    cluster = ThrowawayPostgres().init()
    with (cluster.data / "postgresql.conf").open("a") as conf:
        conf.write("\nmax_connections = 800\nshared_buffers = 256MB\n")
    template = args.template
    rows = []
    try:
        cluster.start()
        pg = cluster.connect()
        if template is None:
            template = unique_name("ows_bench_scale_tmpl")
            print("installing ows_iot into a fresh database ...", file=sys.stderr)
            install_template(template, work / "data", work / "install.log")
        names = prepare(cluster, pg, broker, template, max(counts), args.devices, work)
        phases = [] if args.no_off else [("off", addons_path(), "off")]
        if not args.no_baseline:
            phases.append(
                (f"before ({args.baseline})", baseline_addons(args.baseline, work / "base"), "on")
            )
        phases.append(("after", addons_path(), "on"))
        for count in counts:
            for label, addons, mode in phases:
                row = measure(label, names[:count], cluster, pg, work, args, addons, mode)
                rows.append(row)
                print(
                    f"# {label} D={count}: {row['total']} connections, {row['cpu']:.1f}% CPU, "
                    f"led after {row['led_s']:.0f}s",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
    finally:
        cluster.destroy()
        broker.stop()
        if args.template is None and template is not None:
            drop_database(template)
    print(
        f"{args.workers} HTTP workers, {args.devices} devices per database, idle {args.idle:.0f} s"
    )
    header = (
        f"{'D':>4} {'runtime':<14} {'conn runtime':>12} {'conn pool':>9} {'conn total':>10} "
        f"{'max led':>7} {'threads':>7} {'idle CPU %':>10} {'VMS MiB':>8} {'RSS MiB':>8}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['dbs']:>4} {row['label']:<14} {row['runtime']:>12} {row['pool']:>9} "
            f"{row['total']:>10} {row['max_led']:>7} {row['threads']:>7} {row['cpu']:>10.1f} "
            f"{row['vms']:>8.0f} {row['rss']:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
