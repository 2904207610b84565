#!/usr/bin/python3
"""What recording thumbnail accesses costs (issue 16 C): one agent with one camd camera at a
1 s interval, then 200 sequential GETs of its picture on one kept-alive connection (median,
p90) and 48 connections of 3 city tokens x 100 GETs each (wall time, rate, answers, access
rows, the agent's results committed meanwhile). A measurement, not a test.

    /usr/bin/python3 tests/bench/thumb_access.py      (VW_SERVER / VW_AGENT: other builds)
"""
import http.client
import ssl
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import Harness, query, reader_token, site_targets, wait_for  # noqa: E402
import test_thumbnails as T  # noqa: E402

h = Harness("c2measure")
try:
    _, cam_port = h.start_camd("black", "ok")
    srv = h.setup_server()
    pki = h.ca_issue(srv.conf, T.SITE, T.ORG, city=T.CITY)
    conf = h.agent_config("agent.ini", T.SITE, T.ORG, h.path("agent-state"), srv.url, pki,
                          [("cam-ok", f"rtsp://127.0.0.1:{cam_port}/ok")], interval="1s")
    h.start_agent(conf)
    wait_for(lambda: site_targets(srv, T.SITE).get("cam-ok", {}).get("thumbnail_at"), 60, "pic")
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    tok = reader_token(srv)
    path = f"/api/v1/sites/{T.SITE}/cameras/cam-ok/thumbnail"
    c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
    lat = []
    for _ in range(200):
        t0 = time.perf_counter()
        c.request("GET", path, headers={"Authorization": f"Bearer {tok}"})
        r = c.getresponse(); r.read()
        lat.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, r.status
    lat.sort()
    print(f"sequential 200: median {statistics.median(lat):.2f} ms p90 {lat[180]:.2f} ms")
    toks = [T.token(srv, "city", city=T.CITY, name=f"d{i}") for i in range(3)]
    codes = {}; lock = threading.Lock(); N = 100
    def loop(t):
        cc = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=60)
        for _ in range(N):
            cc.request("GET", path, headers={"Authorization": f"Bearer {t}"})
            r = cc.getresponse(); r.read()
            with lock: codes[r.status] = codes.get(r.status, 0) + 1
    r0 = query(srv.db, "SELECT count(*) FROM results")[0][0]
    th = [threading.Thread(target=loop, args=(t,)) for t in toks for _ in range(16)]
    t0 = time.perf_counter()
    for t in th: t.start()
    for t in th: t.join()
    dt = time.perf_counter() - t0
    r1 = query(srv.db, "SELECT count(*) FROM results")[0][0]
    rows = query(srv.db, "SELECT count(*) FROM thumbnail_access")[0][0]
    print(f"burst 48 conns x {N}: {dt:.2f} s, {48*N/dt:.0f} req/s, codes {codes}, "
          f"access rows {rows} (incl 200 sequential), results +{r1-r0} during")
finally:
    h.close(failed=False)
