#!/usr/bin/python3
"""Latency of the feed's read API against a running server, over one TLS keep-alive connection
per case, requests one after another (what a dashboard does): GET /healthz (the floor: TLS,
HTTP and the loop, no store), the sites list as the province and as a city, one site, and
history pages of a detailed venue (first page, by target, by kind, a page a few days back
followed by its next page through the cursor, a 1000-row page). Used by feed_bench.sh.

    feed_http.py --port P --ca CA --province TOKEN --city TOKEN --site SITE [--reps N]

Prints one line per case: case=.. reps=.. p50_ms=.. p99_ms=.. max_ms=.. bytes=.. rows=..
ratio_p99=.. (p99 / the healthz p99 of the same run), and with --server-pid the server's CPU
per request (utime + stime of all its threads over the case, /proc/PID/stat): unlike the
wall-clock figures it does not move with what else the machine runs.
"""

import argparse
import http.client
import json
import os
import ssl
import time
import urllib.parse


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


PID = 0


def server_cpu_s():
    if not PID:
        return 0.0
    with open(f"/proc/{PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(conn, path, token, reps, warm=5):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lat, size, body = [], 0, None
    cpu0 = 0.0
    for i in range(warm + reps):
        if i == warm:
            cpu0 = server_cpu_s()
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        if r.status != 200:
            raise SystemExit(f"feed_http: {path}: {r.status} {data[:200]!r}")
        if i >= warm:
            lat.append(dt * 1000)
        size, body = len(data), data
    global CPU_MS
    CPU_MS = (server_cpu_s() - cpu0) * 1000 / reps
    return lat, size, json.loads(body)


CPU_MS = 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--province", required=True)
    ap.add_argument("--city", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--server-pid", type=int, default=0)
    a = ap.parse_args()
    global PID
    PID = a.server_pid
    ctx = ssl.create_default_context(cafile=a.ca)

    def conn():
        return http.client.HTTPSConnection("127.0.0.1", a.port, context=ctx, timeout=60)

    site = urllib.parse.quote(a.site)
    back = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 86400))
    cases = [("healthz", "/healthz", None),
             ("sites_province", "/api/v1/sites", a.province),
             ("sites_city", "/api/v1/sites", a.city),
             ("sites_province_city_filter", "/api/v1/sites?city=city-1", a.province),
             ("site_get", f"/api/v1/sites/{site}", a.province),
             ("history_first_page", f"/api/v1/sites/{site}/history", a.province),
             ("history_target", f"/api/v1/sites/{site}/history?target=cam17", a.province),
             ("history_kind_network", f"/api/v1/sites/{site}/history?kind=network", a.province),
             ("history_3_days_back", f"/api/v1/sites/{site}/history?to={back}", a.province),
             ("history_limit_1000", f"/api/v1/sites/{site}/history?limit=1000", a.province)]
    floor = None
    for name, path, token in cases:
        c = conn()
        lat, size, body = run_case(c, path, token, a.reps)
        rows = len(body.get("sites", body.get("results", [])))
        if name == "history_3_days_back":
            # and the page after it, through the cursor it handed out
            nxt = body["next_cursor"]
            assert nxt, "a page three days back has a next page"
            c2 = conn()
            cpu_first = CPU_MS
            lat2, size2, body2 = run_case(
                c2, f"{path}&cursor={urllib.parse.quote(nxt)}", token, a.reps)
            c2.close()
            assert body2["results"][0]["ts"] <= body["results"][-1]["ts"]
            print_case("history_cursor_next_page", lat2, size2, len(body2["results"]), floor)
            globals()["CPU_MS"] = cpu_first
        c.close()
        if name == "healthz":
            floor = pct(lat, 99)
        print_case(name, lat, size, rows, floor)


def print_case(name, lat, size, rows, floor):
    p99 = pct(lat, 99)
    ratio = f"{p99 / floor:.1f}" if floor else "1.0"
    cpu = f" server_cpu_ms_per_req={CPU_MS:.2f}" if PID else ""
    print(f"case={name} reps={len(lat)} p50_ms={pct(lat, 50):.2f} p99_ms={p99:.2f} "
          f"max_ms={max(lat):.2f} bytes={size} rows={rows} ratio_p99={ratio}{cpu}", flush=True)


if __name__ == "__main__":
    main()
