#!/usr/bin/python3
"""Picture evidence (issue 16 C) end to end: a real agent checks real cameras (camd: one black,
one healthy), attaches a JPEG of the analysed keyframe, and the collector serves it.

    /usr/bin/python3 tests/integration/test_thumbnails.py [-k PATTERN]

Proves: a camera's result carries a picture when its verdict changes and not otherwise (a
relay switches the camera from a healthy stream to a black one); the black camera's thumbnail is a valid JPEG (decoded by the ffmpeg CLI), mostly
black, at most 320 px wide and 30 KB, served as image/jpeg with Cache-Control: private,
no-store and X-Thumbnail-Time equal to the site page's thumbnail_at; the healthy camera's is
not black; ?at= before the first picture is 404 and a bad one 400; another city's supervisor
gets 404 (as for an unknown site) and so does an inspector none of whose inspections covers
the site (issue 12 D), and neither access is recorded; every
picture served is one row of thumbnail_access naming who, which site and camera; 48
connections of three tokens looping on pictures get every 200 recorded while the agent's
batches keep being committed; one token's 40 connections get 429 with Retry-After beyond its
16 in flight, and no row for those; HEAD sends no picture and records nothing.
"""

import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, main, query,  # noqa: E402
                     reader_token, site_targets, wait_for)

SITE, ORG, CITY = "site-t1", "org-t1", "city-01"
# Upper bound on a loaded 2-core machine for the first results with pictures to arrive.
REPORT_DEADLINE = 60 * TIMEOUT_SCALE


def get_raw(srv, path, token):
    """GET path with a bearer token: (status, body bytes, headers with lower-case names)."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def token(srv, role, city=None, name="t", inspector=None):
    argv = [SERVER, "-c", str(srv.conf), "token", "create", "--role", role, "--name", name]
    if city:
        argv += ["--city", city]
    if inspector:
        argv += ["--inspector", inspector]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60 * TIMEOUT_SCALE)
    if out.returncode != 0 or not out.stdout.startswith("vwt_"):
        raise AssertionError(f"token create failed ({out.returncode}): {out.stderr}")
    return out.stdout.strip()


def picture(h, name, jpeg):
    """(width, height, mean luma 0-255) of a JPEG, decoded by the ffmpeg CLI (not our code)."""
    f = h.path(name)
    f.write_bytes(jpeg)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,width,height", "-of", "json", str(f)],
                           capture_output=True, text=True, timeout=30, check=True)
    s = json.loads(probe.stdout)["streams"][0]
    if s["codec_name"] != "mjpeg":
        raise AssertionError(f"{name}: not a JPEG: {s}")
    gray = subprocess.run(["ffmpeg", "-v", "error", "-i", str(f), "-f", "rawvideo", "-pix_fmt",
                           "gray", "-"], capture_output=True, timeout=30, check=True).stdout
    if len(gray) != s["width"] * s["height"]:
        raise AssertionError(f"{name}: decoded {len(gray)} bytes for {s['width']}x{s['height']}")
    return s["width"], s["height"], sum(gray) / len(gray)


class Relay:
    """A TCP relay on 127.0.0.1 whose upstream can be switched: each new connection goes to the
    upstream of the moment (a camera check opens one RTSP connection, so the next check sees
    the other camera). Threads; stopped by close()."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while (data := a.recv(65536)):
                b.sendall(data)
        except OSError:
            pass
        for s_ in (a, b):
            try:
                s_.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class Thumbnails(IntegrationTest):

    def test_a_picture_comes_with_a_change_of_verdict_only(self):
        h = self.h
        _, ok_port = h.start_camd("ok:cam")
        _, black_port = h.start_camd("black:cam")
        relay = Relay(ok_port)
        self.addCleanup(relay.close)
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki,
                              [("cam", f"rtsp://127.0.0.1:{relay.port}/cam")], interval="1s")
        h.start_agent(conf)

        def results():
            return query(srv.db, "SELECT seq, status, faults, metrics FROM results"
                                 " WHERE kind = 'stream' AND target = 'cam' ORDER BY seq")

        wait_for(lambda: sum(r[1] == "ok" for r in results()) >= 4, REPORT_DEADLINE,
                 "4 healthy results of cam")
        relay.upstream = black_port
        wait_for(lambda: sum("black" in json.loads(r[2]) for r in results()) >= 4,
                 REPORT_DEADLINE, "4 black results of cam after the switch")
        rows = results()
        pictures = [r[0] for r in query(srv.db, "SELECT seq FROM thumbnails WHERE target = 'cam'"
                                                " ORDER BY seq")]
        verdict = {seq: (status, tuple(sorted(json.loads(f)))) for seq, status, f, _ in rows}
        changed = {rows[0][0]} | {rows[i][0] for i in range(1, len(rows))
                                  if verdict[rows[i][0]] != verdict[rows[i - 1][0]]}
        # Every picture is at a change (or the first result); the interval (30 min) never
        # passes here, so unchanged results carry none.
        self.assertTrue(set(pictures) <= changed, (pictures, changed, rows))
        # The first result carries one if its check decoded a keyframe (camd now and then
        # serves a client no packets: then there is no picture to attach).
        if json.loads(rows[0][3]).get("frames_analysed", 0) >= 1:
            self.assertIn(rows[0][0], pictures, "the first result carries one")
        first_black = next(seq for seq, _, f, _ in rows if "black" in json.loads(f))
        self.assertIn(first_black, pictures, "the change to black carries one")
        self.assertLess(len(pictures), len(rows), "unchanged results carry none")
        token_ = reader_token(srv)
        base = f"/api/v1/sites/{SITE}/cameras/cam/thumbnail"
        status, jpeg, _ = get_raw(srv, base, token_)
        self.assertEqual(status, 200)
        self.assertLess(picture(h, "after.jpg", jpeg)[2], 20, "the newest is the black one")
        healthy = [p for p in pictures if verdict[p][0] == "ok"]
        self.assertTrue(healthy, "a healthy result carried a picture before the switch")
        at = query(srv.db, "SELECT ts_ms FROM thumbnails WHERE seq = ?", (healthy[-1],))[0][0]
        status, jpeg, _ = get_raw(srv, f"{base}?at={at}", token_)  # epoch ms
        self.assertEqual(status, 200)
        self.assertGreater(picture(h, "before.jpg", jpeg)[2], 40, "that one shows the bars")

    def test_black_camera_picture_is_served_to_its_readers_only(self):
        h = self.h
        _, cam_port = h.start_camd("black", "ok")
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki, [
            ("cam-black", f"rtsp://127.0.0.1:{cam_port}/black"),
            ("cam-ok", f"rtsp://127.0.0.1:{cam_port}/ok"),
        ], interval="2s")
        h.start_agent(conf)

        def both_with_pictures():
            t = site_targets(srv, SITE)
            got = {c: t[c] for c in ("cam-black", "cam-ok")
                   if c in t and t[c].get("thumbnail_at")}
            return len(got) == 2 and t["cam-black"]["status"] == "down" and got

        targets = wait_for(both_with_pictures, REPORT_DEADLINE,
                           "both cameras reported with a thumbnail, cam-black down")
        self.assertIn("black", targets["cam-black"]["faults"])

        province = reader_token(srv)
        base = f"/api/v1/sites/{SITE}/cameras"
        before = targets["cam-black"]["thumbnail_at"]
        status, jpeg, hdr = get_raw(srv, f"{base}/cam-black/thumbnail", province)
        after = site_targets(srv, SITE)["cam-black"]["thumbnail_at"]
        self.assertEqual(status, 200, jpeg[:200])
        self.assertEqual(hdr["content-type"], "image/jpeg")
        self.assertEqual(hdr["cache-control"], "private, no-store")
        self.assertEqual(hdr["x-content-type-options"], "nosniff")
        self.assertLessEqual(len(jpeg), 30 * 1024)
        w, ht, mean = picture(h, "black.jpg", jpeg)
        self.assertLessEqual(w, 320)
        self.assertGreater(ht, 0)
        self.assertLess(mean, 20, "the black camera's picture is mostly black")
        # The site page names the newest picture's time; the header names the one served
        # (a newer one may have come in between, after a change of the verdict).
        self.assertTrue(before <= hdr["x-thumbnail-time"] <= after,
                        (before, hdr["x-thumbnail-time"], after))

        status, jpeg_ok, _ = get_raw(srv, f"{base}/cam-ok/thumbnail", province)
        self.assertEqual(status, 200)
        _, _, mean_ok = picture(h, "ok.jpg", jpeg_ok)
        self.assertGreater(mean_ok, 40, "the healthy camera's picture is not black")

        # Before any picture: 404 JSON; a malformed time: 400 naming the parameter.
        status, body, _ = get_raw(srv, f"{base}/cam-black/thumbnail?at=2001-01-01T00:00:00Z",
                                  province)
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["error"], "no thumbnail")
        status, body, _ = get_raw(srv, f"{base}/cam-black/thumbnail?at=yesterday", province)
        self.assertEqual(status, 400)
        self.assertIn("'at'", json.loads(body)["error"])
        status, body, _ = get_raw(srv, f"{base}/no-such-cam/thumbnail", province)
        self.assertEqual(status, 404)
        # ?at= at the served picture's time gives that picture.
        at = hdr["x-thumbnail-time"]
        status, _, hdr2 = get_raw(srv, f"{base}/cam-black/thumbnail?at={at}", province)
        self.assertEqual(status, 200)
        self.assertEqual(hdr2["x-thumbnail-time"], at)

        served = 3  # cam-black, cam-ok, cam-black?at=
        rows = query(srv.db, "SELECT count(*) FROM thumbnail_access")[0][0]
        self.assertEqual(rows, served)

        # Supervision is by city (属地管理): another city's supervisor learns nothing, not
        # even that the site exists; an inspector reads no site data at all.
        other = token(srv, "city", city="city-99", name="other city")
        status, body, _ = get_raw(srv, f"{base}/cam-black/thumbnail", other)
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["error"], "no such site")
        inspector = token(srv, "inspector", city=CITY, name="insp", inspector="I-none")
        status, _, _ = get_raw(srv, f"{base}/cam-black/thumbnail", inspector)
        self.assertEqual(status, 404)  # issue 12 D: no inspection of his covers the site
        self.assertEqual(query(srv.db, "SELECT count(*) FROM thumbnail_access")[0][0], served)

        # The site's own city reads it, and the access names the token's holder.
        own = token(srv, "city", city=CITY, name="duty officer")
        status, jpeg_city, _ = get_raw(srv, f"{base}/cam-black/thumbnail", own)
        self.assertEqual(status, 200)
        rows = query(srv.db, "SELECT actor, site, camera, asked_ms, thumb_ts_ms, peer"
                             " FROM thumbnail_access ORDER BY id")
        self.assertEqual(len(rows), served + 1)
        actor, site, camera, asked, thumb_ts, peer = rows[-1]
        self.assertRegex(actor, r"^city:\S+ \(duty officer\)$")
        self.assertEqual((site, camera, asked), (SITE, "cam-black", None))
        self.assertGreater(thumb_ts, 0)
        self.assertTrue(peer.startswith("127.0.0.1"))
        self.assertIsNotNone(rows[2][3], "the ?at= access records the time asked for")

        # Stored pictures are what the agent sent, each with its result (same seq).
        bad = query(srv.db, "SELECT count(*) FROM thumbnails t WHERE NOT EXISTS (SELECT 1 FROM"
                            " results r JOIN agents a ON a.id = r.agent_id WHERE a.site = t.site"
                            " AND r.seq = t.seq AND r.target = t.target AND r.ts_ms = t.ts_ms)")
        self.assertEqual(bad[0][0], 0)

    def test_concurrent_looks_are_all_recorded_and_ingest_goes_on(self):
        """Readers opening pictures at once (three tokens, 16 connections each, looping)
        get every picture recorded, one thumbnail_access row per 200, while the agent's
        batches keep being committed and acknowledged; HEAD sends no picture and records
        nothing."""
        h = self.h
        _, cam_port = h.start_camd("black", "ok")
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki, [
            ("cam-black", f"rtsp://127.0.0.1:{cam_port}/black"),
            ("cam-ok", f"rtsp://127.0.0.1:{cam_port}/ok"),
        ], interval="1s")
        h.start_agent(conf)
        wait_for(lambda: all(site_targets(srv, SITE).get(c, {}).get("thumbnail_at")
                             for c in ("cam-black", "cam-ok")),
                 REPORT_DEADLINE, "both cameras reported with a thumbnail")
        base = f"/api/v1/sites/{SITE}/cameras"

        # HEAD: the GET's headers and length, no bytes of the picture, no access row.
        ctx = ssl.create_default_context(cafile=str(srv.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
        conn.request("HEAD", f"{base}/cam-ok/thumbnail",
                     headers={"Authorization": f"Bearer {reader_token(srv)}"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.read(), b"")
        self.assertEqual(resp.getheader("content-type"), "image/jpeg")
        self.assertGreater(int(resp.getheader("content-length")), 100)
        self.assertTrue(resp.getheader("x-thumbnail-time"))
        conn.close()
        self.assertEqual(query(srv.db, "SELECT count(*) FROM thumbnail_access")[0][0], 0)

        tokens = [token(srv, "city", city=CITY, name=f"duty {i}") for i in range(3)]
        per_token = 16
        stop = threading.Event()
        lock = threading.Lock()
        codes, errors = {}, []

        def looker(tok, cam):
            try:
                c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx,
                                                timeout=30 * TIMEOUT_SCALE)
                while not stop.is_set():
                    c.request("GET", f"{base}/{cam}/thumbnail",
                              headers={"Authorization": f"Bearer {tok}"})
                    r = c.getresponse()
                    body = r.read()
                    if r.status == 200 and not body.startswith(b"\xff\xd8"):
                        raise AssertionError("a 200 without a JPEG")
                    if r.status in (429, 503) and r.getheader("retry-after") != "1":
                        raise AssertionError(f"{r.status} without Retry-After")
                    with lock:
                        codes[r.status] = codes.get(r.status, 0) + 1
                c.close()
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                with lock:
                    errors.append(repr(e))

        def results():
            return query(srv.db, "SELECT count(*) FROM results")[0][0]

        before = results()
        threads = [threading.Thread(target=looker, args=(t, ("cam-black", "cam-ok")[i % 2]),
                                    daemon=True)
                   for t in tokens for i in range(per_token)]
        for t in threads:
            t.start()
        try:
            # Looks under way, then the agent's next batches must still be committed (its
            # acks are those commits): more results than before, within the deadline.
            wait_for(lambda: sum(codes.values()) >= 200 or errors, REPORT_DEADLINE,
                     "200 thumbnail answers")
            during = results()
            wait_for(lambda: results() >= during + 4 or errors, REPORT_DEADLINE,
                     "the agent's batches committed while pictures are looked at")
        finally:
            stop.set()
            for t in threads:
                t.join(60 * TIMEOUT_SCALE)
        self.assertEqual(errors, [])
        self.assertGreater(results(), before)
        # 16 connections per token never exceed the bound of 16 in flight: nothing refused.
        self.assertEqual(set(codes), {200}, codes)
        rows = query(srv.db, "SELECT actor, count(*) FROM thumbnail_access GROUP BY actor")
        self.assertEqual(sum(n for _, n in rows), codes[200])
        self.assertEqual(len(rows), 3, rows)

        # One token with 40 requests at once: at most 16 of its requests are in flight,
        # the rest are refused 429 with Retry-After (checked in looker) and write no row;
        # every 200 is still one row.
        greedy = token(srv, "city", city=CITY, name="greedy")
        stop.clear()
        codes.clear()
        threads = [threading.Thread(target=looker, args=(greedy, "cam-ok"), daemon=True)
                   for _ in range(40)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: sum(codes.values()) >= 400 or errors, REPORT_DEADLINE,
                     "400 answers to one token's 40 connections")
        finally:
            stop.set()
            for t in threads:
                t.join(60 * TIMEOUT_SCALE)
        self.assertEqual(errors, [])
        self.assertLessEqual(set(codes), {200, 429}, codes)
        mine = query(srv.db, "SELECT count(*) FROM thumbnail_access WHERE actor LIKE ?",
                     ("% (greedy)",))[0][0]
        self.assertEqual(mine, codes.get(200, 0))


if __name__ == "__main__":
    main()
