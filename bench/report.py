#!/usr/bin/env python3
"""Prints the bench scripts' tables from the JSON reports they collected.

overhead: added latency (through calos - direct) at p50/p99 per scenario, the
throughput ratio, and resident memory per idle open stream.
loadgen: calos load vs oha vs ab on one endpoint: requests/s, p50, p99.
"""
import json
import pathlib
import sys


def load(tmp, name):
    return json.loads((pathlib.Path(tmp) / f"{name}.json").read_text())


def overhead(tmp, rate, duration, conc, n):
    print()
    print(f"calos overhead: calos mock-llm direct vs through calos (same tool: calos load)")
    print(f"{'scenario':<34}{'direct p50':>11}{'p99':>9}{'calos p50':>11}{'p99':>9}"
          f"{'added p50':>11}{'p99':>9}{'req/s d':>9}{'req/s c':>9}{'ratio':>7}{'fail':>6}")
    scenarios = [
        ("open-whole", f"open {rate}/s {duration}, whole"),
        ("open-stream", f"open {rate}/s {duration}, streamed"),
        ("closed-whole", f"closed -c {conc} -n {n}, whole"),
        ("closed-stream", f"closed -c {conc} -n {n}, streamed"),
    ]
    for key, label in scenarios:
        d, c = load(tmp, f"{key}-direct"), load(tmp, f"{key}-calos")
        dl, cl = d["latency"] or {}, c["latency"] or {}
        fails = d["requests"]["failed"] + c["requests"]["failed"]
        ratio = c["requestsPerSec"] / d["requestsPerSec"] if d["requestsPerSec"] else 0
        print(f"{label:<34}{dl.get('p50', 0):>11.3f}{dl.get('p99', 0):>9.3f}"
              f"{cl.get('p50', 0):>11.3f}{cl.get('p99', 0):>9.3f}"
              f"{cl.get('p50', 0) - dl.get('p50', 0):>+11.3f}{cl.get('p99', 0) - dl.get('p99', 0):>+9.3f}"
              f"{d['requestsPerSec']:>9.0f}{c['requestsPerSec']:>9.0f}{ratio:>7.2f}{fails:>6}")
        if key.startswith("open"):
            for side, r in (("direct", d), ("calos", c)):
                o = r["openLoop"]
                if o["lateSends"]:
                    print(f"{'':<4}{side}: {o['lateSends']} late sends (latest {o['maxLatenessMs']:.1f} ms),"
                          f" achieved {o['achievedSendRate']:.0f}/s of {o['scheduledRate']:.0f}/s")
    print("(latencies in ms; open loop measured from the scheduled send)")
    m = load(tmp, "memory")
    per = (m["rssDuringKb"] - m["rssBeforeKb"]) * 1024 / max(m["streams"], 1)
    print()
    print(f"memory: calos RSS {m['rssBeforeKb'] / 1024:.1f} MiB idle, {m['rssDuringKb'] / 1024:.1f} MiB with "
          f"{m['streams']} open streams -> {per / 1024:.1f} KiB per idle open stream")


def loadgen(tmp):
    print()
    print("load generators on one endpoint (same concurrency, same request count)")
    print(f"{'run':<18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for f in sorted(pathlib.Path(tmp).glob("gen-*.json")):
        r = json.loads(f.read_text())
        print(f"{f.stem[4:]:<18}{r['rps']:>10.0f}{r['p50']:>10.3f}{r['p99']:>10.3f}{r['failed']:>8}")


if __name__ == "__main__":
    if sys.argv[1] == "overhead":
        overhead(*sys.argv[2:7])
    else:
        loadgen(sys.argv[2])
