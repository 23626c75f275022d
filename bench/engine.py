"""Throughput of parsing + session engine against bare ``json.loads``.

Builds a workshop day (one Shelly Gen2 frame a second for 8 hours: jobs, idle
gaps, short spikes, silences, energy-only frames) and measures, in the same run,
messages per second of ``json.loads`` alone and of ``Ingestor.process`` (which
decodes, parses, routes and runs the state machine). Prints the ratio; the goal
is >= 0.33 (the whole pipeline costs at most three times the JSON decoding).

    python bench/engine.py [--hours 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ows_iot.services.config import DeviceConfig
from ows_iot.services.ingestor import Ingestor

DEVICE = "shellypmminig3-48f6eeb73a1c"
T0 = 1_767_250_800.0  # 07:00 on a working day


def power_profile(seconds: int, rng: random.Random):
    """Yield the power of each second: jobs, idle gaps, spikes and silences."""
    second = 0
    while second < seconds:
        kind = rng.choices(["job", "idle", "spike", "silence"], [5, 4, 1, 0.3])[0]
        length = {
            "job": rng.randint(300, 3600),
            "idle": rng.randint(60, 1800),
            "spike": rng.randint(1, 2),
            "silence": rng.randint(60, 400),
        }[kind]
        level = {"job": rng.uniform(150, 900), "idle": rng.uniform(0, 8), "spike": 1500}.get(kind)
        for _ in range(length):
            if second >= seconds:
                return
            if kind == "silence":
                yield None
            elif kind == "job" and rng.random() < 0.05:
                yield rng.uniform(30, 90)  # tool change: standby
            else:
                yield max(0.0, level + rng.gauss(0, level * 0.02 + 0.5))
            second += 1


def build_capture(hours: float, seed: int = 7) -> list[tuple[str, bytes, float]]:
    rng = random.Random(seed)
    topic = f"{DEVICE}/events/rpc"
    energy = 0.0
    capture = []
    for second, watts in enumerate(power_profile(int(hours * 3600), rng)):
        if watts is None:
            continue
        ts = T0 + second
        energy += watts / 3600
        status = {
            "id": 0,
            "current": round(watts / 230, 3),
            "voltage": round(230 + rng.gauss(0, 0.8), 1),
            "freq": 50.0,
            "aenergy": {
                "total": round(energy, 3),
                "by_minute": [round(rng.uniform(0, 20), 3) for _ in range(3)],
                "minute_ts": int(ts) // 60 * 60,
            },
        }
        if second % 60 != 30:  # once a minute an energy-only frame
            status["apower"] = round(watts, 1)
        frame = {
            "src": DEVICE,
            "dst": f"{DEVICE}/events",
            "method": "NotifyStatus",
            "params": {"ts": round(ts + 0.05, 2), "pm1:0": status},
        }
        capture.append((topic, json.dumps(frame).encode(), ts + 0.2))
    return capture


def best_of(repeat: int, run) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"building a {args.hours:g} h workshop day ...", file=sys.stderr)
    capture = build_capture(args.hours)
    config = DeviceConfig(device_id=DEVICE, mqtt_topic=DEVICE)
    payloads = [payload for _, payload, _ in capture]
    loads = json.loads

    def decode_only():
        for payload in payloads:
            loads(payload)

    summary = {}

    def pipeline():
        ingestor = Ingestor([config])
        events = 0
        for topic, payload, ts in capture:
            events += len(ingestor.process(topic, payload, ts))
        summary.update(events=events, dropped=sum(ingestor.dropped.values()))

    decode_s = best_of(args.repeat, decode_only)
    pipeline_s = best_of(args.repeat, pipeline)
    count = len(capture)
    ratio = decode_s / pipeline_s
    print(f"messages:            {count}")
    print(f"json.loads alone:    {count / decode_s:12,.0f} msg/s")
    print(f"parse + engine:      {count / pipeline_s:12,.0f} msg/s")
    print(f"events emitted:      {summary['events']}  (dropped {summary['dropped']})")
    print(f"ratio (goal >= 0.33): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
