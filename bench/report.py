#!/usr/bin/env python3
"""Prints the bench scripts' tables from the JSON reports they collected.

overhead: added latency (through calos - direct) at p50/p99 per scenario, the
throughput ratio, and resident memory per idle open stream.
loadgen: calos load vs oha vs ab on one endpoint: requests/s, p50, p99.
hotpath: issue 11's goals, each row measured against the mock in the same run.
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


def hotpath(tmp, duration, conc, rate):
    r = lambda name: load(tmp, name)
    rows = []

    def row(label, measured, goal, met, cpu=None):
        rows.append((label, measured, goal, "yes" if met else "NO", "" if cpu is None else f"{cpu:.0f}"))

    d, c, h = r("closed-direct"), r("closed-calos"), r("closed-cached")
    ratio = c["rps"] / d["rps"]
    row(f"closed loop -c {conc}, req/s (direct {d['rps']:,.0f})", f"{c['rps']:,.0f} ({ratio:.0%})",
        ">= 25% of direct", ratio >= 0.25, c["cpuUsPerReq"])
    ratio = h["rps"] / d["rps"]
    row("cache hits, closed loop, req/s", f"{h['rps']:,.0f} ({ratio:.0%})", ">= 50% of direct",
        ratio >= 0.50, h["cpuUsPerReq"])
    k, n, c2 = r("closed-key"), r("closed-noledger"), r("closed-calos-again")
    # The ledger's cost: the calos rows taken just before and after the
    # ledger-less one, averaged, against it.
    on_cpu = (c["cpuUsPerReq"] + c2["cpuUsPerReq"]) / 2
    on_p50 = (c["p50"] + c2["p50"]) / 2
    row(f"API key instead of a session token, req/s (token {c['rps']:,.0f})",
        f"{k['rps']:,.0f}, {k['cpuUsPerReq'] - c['cpuUsPerReq']:+.1f} us CPU", "<= +5 us CPU",
        k["cpuUsPerReq"] - c["cpuUsPerReq"] <= 5, k["cpuUsPerReq"])
    row(f"usage ledger on vs off, p50 ms / CPU per request (off: {n['p50']:.3f} ms, {n['cpuUsPerReq']:.0f} us)",
        f"{on_p50 - n['p50']:+.3f} / {on_cpu - n['cpuUsPerReq']:+.1f} us", "<= +10 us CPU",
        on_cpu - n["cpuUsPerReq"] <= 10, on_cpu)
    od, oc = r("open-direct"), r("open-calos")
    a50, a99 = oc["p50"] - od["p50"], oc["p99"] - od["p99"]
    row(f"open loop {rate}/s, added p50 / p99 ms (direct {od['p50']:.2f} / {od['p99']:.2f})",
        f"{a50:+.2f} / {a99:+.2f}", "<= 0.3 / <= 1", a50 <= 0.3 and a99 <= 1.0, oc["cpuUsPerReq"])
    sd, sc = r("stream-direct"), r("stream-calos")
    s99 = sc["latency"]["p99"] - sd["latency"]["p99"]
    row(f"streamed, open loop {rate}/s, added p99 ms (direct {sd['latency']['p99']:.2f})",
        f"{s99:+.2f}", "<= 1", s99 <= 1.0)
    m = r("memory")
    per = (m["rssDuringKb"] - m["rssBeforeKb"]) / max(m["streams"], 1)
    row(f"idle open stream, RSS per stream at {m['streams']} streams", f"{per:.1f} KiB", "<= 20 KiB", per <= 20)
    for name, label in (("health", "GET /api/health"), ("me", "GET /api/auth/me")):
        x = r(name)
        row(f"{label}, req/s", f"{x['rps']:,.0f}", ">= 30,000", x["rps"] >= 30_000, x["cpuUsPerReq"])
    a, b, e = m["rssChatsKb"]
    growth = e - b
    row(f"RSS after {m['chats']:,} / {2 * m['chats']:,} chats (start {m['rssStartKb'] / 1024:.0f} MiB)",
        f"{b / 1024:.1f} / {e / 1024:.1f} MiB", "flat", growth <= max(2048, b * 0.05))
    failed = {n: r(n)["failed"] for n in ("closed-direct", "closed-calos", "closed-cached", "open-direct",
                                          "open-calos", "health", "me", "closed-key", "closed-noledger",
                                          "closed-calos-again")}
    failed["stream-direct"], failed["stream-calos"] = sd["requests"]["failed"], sc["requests"]["failed"]
    fails = ", ".join(f"{n} {k}" for n, k in failed.items() if k) or "none"
    peers = pathlib.Path(tmp, "closed-litellm.json").exists()
    if peers:
        d2, l2, c2 = r("closed-direct-2"), r("closed-litellm"), r("closed-calos-2")
        row(f"peer: LiteLLM proxy, closed loop -c {conc}, req/s (direct {d2['rps']:,.0f})",
            f"{l2['rps']:,.0f} ({l2['rps'] / d2['rps']:.1%}), p50 {l2['p50']:.1f} ms",
            "(for comparison)", True)
        row("      calos in the same round, req/s", f"{c2['rps']:,.0f} ({c2['rps'] / d2['rps']:.0%}), "
            f"p50 {c2['p50']:.2f} ms", "(for comparison)", True, c2["cpuUsPerReq"])
    print()
    print(f"calos hot path vs calos mock-llm directly, one run ({duration} per row; oha, calos load)")
    width = max(len(x[0]) for x in rows) + 2
    print(f"{'measurement':<{width}}{'through calos':>28}{'goal':>18}{'met':>5}{'CPU us/req':>12}")
    for label, measured, goal, met, cpu in rows:
        print(f"{label:<{width}}{measured:>28}{goal:>18}{met:>5}{cpu:>12}")
    print(f"failed requests: {fails}")


if __name__ == "__main__":
    if sys.argv[1] == "overhead":
        overhead(*sys.argv[2:7])
    elif sys.argv[1] == "hotpath":
        hotpath(*sys.argv[2:6])
    else:
        loadgen(sys.argv[2])
