#!/usr/bin/python3
"""Fault to feed (issue 15, part 4): how long from a camera going black, frozen or off until the
collector's problems API shows it, for a running agent in an exam session, all on loopback?

    /usr/bin/python3 tests/bench/fault_to_feed.py [BUILD_DIR]     default: build (Release)
    Env: FAULTS=20  SPACING_S=2.5 (mean pause between injections)  VW_KEEP=1 (keep the temp dir)

1. camd serves FAULTS healthy cameras (one shared encoder) with a run-time switch (--control,
   SIGUSR1); a real collector (`ca init`, the agent's certificate from its CA) and one agent with
   every camera in room A101, at the product's default cadences: `interval` 120 s,
   `session_interval` 15 s, `check_timeout` 10 s, default upload batching. Only `sessions_poll`
   is 3 s, so the session is picked up quickly (that is setup, not the figure).
2. an exam session for A101 is created at the collector (POST /api/v1/sessions); the clock
   starts once every camera has an in-session ok result at the collector.
3. FAULTS injections, one camera each, kinds rotating black, frozen, down (unmounted: 404),
   at random pauses (uniform 0..2*SPACING_S) so they fall at every phase of the check cadence.
   An injection's time is taken just before camd is signalled (so the figure errs long).
4. GET /api/v1/problems?state=open&site= polled every 0.2 s; a fault counts as visible when its
   camera has an open problem whose faults (or status, for down) match what was injected.
   Per fault: to_check = the problem's start (the check time of the result that opened it)
   less the injection; to_feed = first seen less that check time (upload + ingest + poll).

Baseline in the same run: the cadence bound, session_interval * 1.1 (its jitter) — the longest a
fault can wait for its camera's next check; p99 / target and p99 / bound are printed as ratios.
Prints key=value lines; exits 1 if p99 misses the 20 s target.
"""

import json
import os
import random
import signal
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
build = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build").resolve()
os.environ.setdefault("VW_AGENT", str(build / "venuewatch-agent"))
os.environ.setdefault("VW_SERVER", str(build / "venuewatch-server"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from harness import (CAMD, SYSTEM_PYTHON, Harness, https_request, query,  # noqa: E402
                     reader_token, wait_for)

FAULTS = int(os.environ.get("FAULTS", "20"))
SPACING_S = float(os.environ.get("SPACING_S", "2.5"))
TARGET_P99_S = 20.0  # the issue's target
SESSION_INTERVAL_S = 15  # agent_conf.c's default session_interval, written out so it is visible
KINDS = ["black", "frozen", "down"]
SITE, ORG, CITY, ROOM = "site-f2f", "org-f2f", "city-f2f", "A101"
SHANGHAI = timezone(timedelta(hours=8))
LEAD_S = 10  # the session starts this long after it is created


def pct(xs, p):
    """Nearest-rank percentile: with 20 samples p99 is the largest, as it should be."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


def iso_ms(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def matches(problem, kind):
    if kind == "down":
        return problem["status"] == "down"
    return kind in problem["faults"]


def main():
    h = Harness("fault-to-feed")
    ok = False
    try:
        cams = [f"cam{i:02d}" for i in range(1, FAULTS + 1)]
        control = h.path("control.json")
        camd = h.start("camd", [SYSTEM_PYTHON, CAMD, "--port", "0", "--control", control]
                       + [a for c in cams for a in ("--mount", f"ok:{c}")])
        m = camd.wait_for_output(r"^READY port=(\d+)$", 30, stream="stdout", what="camd READY")
        cam_port = int(m.group(1))

        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki,
                              [(c, f"rtsp://127.0.0.1:{cam_port}/{c}", ROOM) for c in cams],
                              interval="120s", check_timeout="10s",
                              extra_agent=f"session_interval = {SESSION_INTERVAL_S}s")
        text = Path(conf).read_text().replace("[collector]\n", "[collector]\nsessions_poll = 3s\n",
                                              1)
        Path(conf).write_text(text)
        agent = h.start_agent(conf)
        token = reader_token(srv)

        start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=LEAD_S)
        body = {"site": SITE, "id": "2026-f2f-1", "occupation": "电工", "level": "四级",
                "start": start.astimezone(SHANGHAI).isoformat(),
                "end": (start + timedelta(hours=2)).astimezone(SHANGHAI).isoformat(),
                "rooms": [ROOM], "candidates": 30}
        st, reply = https_request(srv.port, srv.ca, "POST", "/api/v1/sessions", body, token=token)
        if st != 201:
            raise SystemExit(f"fault_to_feed: POST /api/v1/sessions -> {st} {reply!r}")
        agent.wait_for_output(r"event=sessions_updated version=1 collector=1", 60,
                              what="the agent picking up the session")

        def all_in_session():
            rows = query(srv.db, "SELECT DISTINCT target FROM results WHERE kind = 'stream' "
                         "AND session = ? AND status = 'ok'", (body["id"],))
            return len(rows) == len(cams)
        wait_for(all_in_session, LEAD_S + 120, "an in-session ok result of every camera")

        plan = [(c, KINDS[i % len(KINDS)]) for i, c in enumerate(cams)]
        injected, seen, switch = {}, {}, {}
        rng = random.Random(int(os.environ.get("SEED", "15")))

        def poll():
            st, doc = https_request(srv.port, srv.ca, "GET",
                                    f"/api/v1/problems?state=open&site={SITE}&limit=1000",
                                    token=token)
            now = time.time()
            if st != 200:
                return
            for p in doc["problems"]:
                c = p["target"]
                if p["kind"] == "stream" and c in injected and c not in seen \
                        and matches(p, injected[c][1]):
                    seen[c] = (now, iso_ms(p["start"]), p["faults"], p["status"])

        for n, (cam, kind) in enumerate(plan, 1):
            control.write_text(json.dumps({f"/{cam}": None if kind == "down" else kind}))
            t0 = time.time()
            camd.send(signal.SIGUSR1)
            camd.wait_for_output(rf"^SWITCHED count={n} ", 10, stream="stdout",
                                 what=f"camd switching {cam}")
            switch[cam] = time.time() - t0
            injected[cam] = (t0, kind)
            # The pause is the experiment's spread over the cadence, polling all the while.
            until = time.monotonic() + rng.uniform(0, 2 * SPACING_S)
            while time.monotonic() < until:
                poll()
                time.sleep(0.2)

        def all_seen():
            poll()
            return len(seen) == len(plan)
        # Far beyond the target: a fault that never shows is reported, not waited for forever.
        wait_for(all_seen, 6 * SESSION_INTERVAL_S + 60, "every injected fault in the problems API",
                 interval=0.2)

        total, to_check, to_feed = [], [], []
        for cam, kind in plan:
            t0 = injected[cam][0]
            vis, chk, faults, status = seen[cam]
            total.append(vis - t0)
            to_check.append(chk - t0)
            to_feed.append(vis - chk)
            print(f"fault camera={cam} kind={kind} status={status} faults={','.join(faults)} "
                  f"total_s={vis - t0:.2f} to_check_s={chk - t0:.2f} to_feed_s={vis - chk:.2f}")
        bound = SESSION_INTERVAL_S * 1.1
        p99 = pct(total, 99)
        print(f"faults={len(plan)} session_interval_s={SESSION_INTERVAL_S} "
              f"camd_switch_max_s={max(switch.values()):.3f}")
        for name, xs in (("total", total), ("to_check", to_check), ("to_feed", to_feed)):
            print(f"{name}_p50_s={pct(xs, 50):.2f} {name}_p99_s={pct(xs, 99):.2f} "
                  f"{name}_mean_s={statistics.mean(xs):.2f} {name}_max_s={max(xs):.2f}")
        print(f"baseline_cadence_bound_s={bound:.1f} p99_over_bound={p99 / bound:.2f} "
              f"p99_over_target={p99 / TARGET_P99_S:.2f} target_p99_s={TARGET_P99_S:g} "
              f"{'PASS' if p99 <= TARGET_P99_S else 'MISS'}")
        ok = p99 <= TARGET_P99_S
        return 0 if ok else 1
    finally:
        if not ok:
            print(f"fault_to_feed: logs in {h.dir}", file=sys.stderr)
            os.environ["VW_KEEP"] = "1"
        h.close(failed=False)


if __name__ == "__main__":
    sys.exit(main())
