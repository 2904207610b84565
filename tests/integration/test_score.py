#!/usr/bin/python3
"""Item 3.6 end to end: real cameras (camd), a real agent and server, an exam session at the
collector, a camera stopped for part of it.

    /usr/bin/python3 tests/integration/test_score.py [-k PATTERN]

Proves: the served picture fraction reflects the stopped camera; a recomputation from the
exported evidence alone (GET /api/v1/evidence/...) gives the very figures served; another
city's supervisor sees the org as one without sessions; a published score keeps its rubric
when the rubric changes (SIGHUP).

With VW_SCORE_BACKEND=postgresql (ctest integration_score_pg, under tests/tools/pg.sh) the
collector and the CLI run on PostgreSQL instead (issue 13): the same proofs of its rollup job
and score reads.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, get_json,  # noqa: E402
                     https_request, main, psql, reader_token, wait_for)

SITE, ORG, CITY = "site-s1", "org-s1", "city-01"
SHANGHAI = timezone(timedelta(hours=8))
ROOM = "hall-1"
CRITERIA = ("connected", "network", "picture", "floor", "records")
COUNTS = {"connected": {"ok", "degraded"}, "records": {"ok", "degraded"},
          "network": {"ok"}, "picture": {"ok"}, "floor": {"ok"}}

# Upper bounds on a loaded 2-core machine, not expected durations.
LEAD_S = 10       # from entering the session to its start: the agent is up and reporting
SESSION_S = 40    # the session's length
STOP_AT_S = 18    # the back camera stops this long after the start
SETTLE_DEADLINE = 120 * TIMEOUT_SCALE


def now_ms():
    return int(time.time() * 1000)


def iso_local(ms):
    """RFC 3339 in Asia/Shanghai (UTC+8, no DST), as a venue's plan writes times."""
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).isoformat()


def recompute(ev):
    """A criterion's held time from the evidence rows alone, by docs/SCORE.md: a row holds
    from its check time until the next row of its target (in seq order), never longer than
    stale_factor x its interval_ms metric (default_stale_ms without one); a next row at or
    before it ends the hold at once; only the counted statuses count; clipped to the
    session; the mean over the targets that hold any time within it."""
    s = ev["session"]
    start, end = s["start_ms"], s["end_ms"]
    counts = set(ev["counts"].split("|"))
    by_target = {}
    for r in ev["rows"]:
        by_target.setdefault(r["target"], []).append(r)
    held, targets = {}, 0
    for t, rows in by_target.items():
        rows.sort(key=lambda r: r["seq"])
        got = any_time = 0
        for i, r in enumerate(rows):
            iv = r["metrics"].get("interval_ms")
            stale = ev["stale_factor"] * iv if iv and iv > 0 else ev["default_stale_ms"]
            until = r["ts_ms"] + stale
            if i + 1 < len(rows):
                until = min(until, max(rows[i + 1]["ts_ms"], r["ts_ms"]))
            part = max(0, min(until, end) - max(r["ts_ms"], start))
            any_time += part
            if r["status"] in counts:
                got += part
        if any_time > 0:
            targets += 1
            held[t] = got
    return held, targets


def store_section():
    """[store] for the backend under test: "" (the SQLite default), or a fresh PostgreSQL
    database on the server tests/tools/pg.sh started."""
    if os.environ.get("VW_SCORE_BACKEND") != "postgresql":
        return ""
    base = os.environ["VW_PG_DSN"]
    psql(f"{base} dbname=postgres", "CREATE DATABASE vw_score")
    return (f"[store]\nbackend = postgresql\ndsn = {base} dbname=vw_score\n"
            f"password_file = {os.environ['VW_PG_PASSFILE']}\n")


class Score(IntegrationTest):

    def test_stopped_camera_lowers_picture_and_evidence_recomputes_the_served_score(self):
        h = self.h
        _, front_port = h.start_camd("ok")
        back_camd, back_port = h.start_camd("ok")
        state = h.path("srv")
        store = store_section()
        # Figures count as final [score] settle after the session's end (1 h by default, for
        # the slowest default cadence); the agent here checks every few seconds.
        conf = h.server_config(state, name="srv.ini", extra="[score]\nsettle = 10s\n" + store)
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        if store:
            srv.proc.wait_for_output(r"event=store_open backend=postgresql", 10 * TIMEOUT_SCALE)
        pki = h.ca_issue(conf, SITE, ORG, city=CITY)

        # The session, entered at the collector as the organisation's plan would be (the
        # site's org and city come from its enrollment, not from the request).
        start = (now_ms() // 1000 + LEAD_S) * 1000
        end = start + SESSION_S * 1000
        body = {"site": SITE, "id": "S-0001", "occupation": "电工", "level": "四级",
                "start": iso_local(start), "end": iso_local(end), "rooms": [ROOM],
                "candidates": 30}
        st, reply = https_request(srv.port, srv.ca, "POST", "/api/v1/sessions", body,
                                  token=reader_token(srv))
        self.assertEqual(st, 201, reply)
        exam_id = reply["sessions"][0]["ref"]
        self.assertEqual(reply["sessions"][0]["org"], ORG, reply)
        aconf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki, [
            ("front", f"rtsp://127.0.0.1:{front_port}/ok", ROOM),
            ("back", f"rtsp://127.0.0.1:{back_port}/ok", ROOM),
        ])
        h.start_agent(aconf)

        wait_for(lambda: now_ms() >= start + STOP_AT_S * 1000, SETTLE_DEADLINE,
                 "the session to run for a while")
        back_camd.stop()
        stopped_ms = now_ms()

        period = f"from={start - 3600_000}&to={end + 3600_000}"

        def settled():
            d = get_json(srv, f"/api/v1/orgs/{ORG}/score?{period}")
            s = d["sessions"]
            return d if s and not s[0]["provisional"] else None

        doc = wait_for(settled, SETTLE_DEADLINE, "the rollup to pass the session's end")

        def mismatches():
            """Every criterion recomputed from its evidence alone against what is served:
            (the served document, the evidence, a list of differences)."""
            d = get_json(srv, f"/api/v1/orgs/{ORG}/score?{period}")
            sess = d["sessions"][0]
            evs, bad = {}, []
            for crit in CRITERIA:
                ev = evs[crit] = get_json(srv, f"/api/v1/evidence/{exam_id}-{crit}")
                held, targets = recompute(ev)
                if crit in ("floor", "connected"):
                    targets = 1  # one listed room; the one collector
                frac = (sum(held.values()) / targets / sess["duration_ms"]) if targets else 0
                if abs(frac - sess["criteria"][crit]["fraction"]) > 1e-9:
                    bad.append((crit, frac, sess["criteria"][crit], ev["credits"]))
                # The credits the evidence carries agree with its rows, target by target.
                for c in ev["credits"]:
                    got = c["ok_ms"] + (c["degraded_ms"] if "degraded" in COUNTS[crit] else 0)
                    if got != held.get(c["target"], 0):
                        bad.append((crit, c, held.get(c["target"], 0)))
            return d, evs, bad

        first = mismatches()
        if first[2]:
            # The rollup may still be crediting the last open holds up to the session's end
            # a tick after it reports the session as rolled (seen with the rollup branch of
            # 2026-12-02; reported). What must hold is that the served figures and the
            # evidence agree once it has.
            print(f"note: first non-provisional answer differed from its evidence: {first[2]}",
                  file=sys.stderr)
        def agreed():
            m = mismatches()
            if m[2]:
                raise AssertionError(f"evidence and served figures differ: {m[2]}")
            return m

        doc, evs, _ = wait_for(agreed, SETTLE_DEADLINE,
                               "every criterion recomputed from its evidence to equal the served "
                               "figure", interval=0.5)
        for ev in evs.values():
            self.assertFalse(ev["pruned"])
        sess = doc["sessions"][0]
        self.assertEqual(sess["id"], exam_id)
        pic = sess["criteria"]["picture"]
        # front clear all along, back only until it was stopped: about (1 + 18/40) / 2.
        back_share = (stopped_ms - start) / (end - start)
        expected = (1 + back_share) / 2
        self.assertGreater(pic["fraction"], 0.5, pic)
        self.assertLess(pic["fraction"], 0.95, pic)
        self.assertLess(abs(pic["fraction"] - expected), 0.2, (pic, expected))
        self.assertEqual(pic["targets"], 2, pic)
        self.assertEqual(pic["evidence"], f"/api/v1/evidence/{exam_id}-picture")
        self.assertEqual(doc["reasons"]["picture"][0]["target"], "back", doc["reasons"])
        self.assertGreater(sess["criteria"]["connected"]["fraction"], 0.9, sess)
        self.assertEqual(sess["criteria"]["records"]["fraction"], 0, sess)  # no recordings kept
        self.assertEqual(doc["score"], 1, doc)  # connected, but a criterion far below 50 %
        self.assertEqual(doc["rubric"]["version"], "3334d40b6acd")

        # The same session in the site view, the ranking, the CSV and the report.
        site_doc = get_json(srv, f"/api/v1/sites/{SITE}/score?{period}")
        self.assertEqual(site_doc["sessions"][0]["criteria"], sess["criteria"])
        rank = get_json(srv, f"/api/v1/score/ranking?{period}")
        self.assertEqual([o["org"] for o in rank["orgs"]], [ORG])
        self.assertEqual(rank["orgs"][0]["score"], doc["score"])
        # Read in 31-day windows: a session counts once, in the window of its start, or in
        # the first when it began before the period; and it is the same session as above.
        day = 86400_000
        for lo, hi in ((start - 40 * day, end + 40 * day), (start + 10_000, end + 70 * day),
                       (start - 31 * day, end)):
            r = get_json(srv, f"/api/v1/score/ranking?from={lo}&to={hi}")["orgs"]
            self.assertEqual([(o["org"], o["sessions"], o["duration_ms"]) for o in r],
                             [(ORG, 1, sess["duration_ms"])], (lo, hi))
            self.assertEqual(r[0]["criteria"]["picture"], pic["fraction"])
        token = reader_token(srv)
        status, csv = https_request(srv.port, srv.ca, "GET",
                                    f"/api/v1/orgs/{ORG}/report.csv?{period}", token=token)
        self.assertEqual(status, 200)
        self.assertTrue(csv.startswith('\ufeff"session_id",'), csv[:40])  # libcsv quotes every field
        self.assertIn(f"{pic['fraction'] * 100:.2f}", csv)
        status, html = https_request(srv.port, srv.ca, "GET",
                                     f"/api/v1/orgs/{ORG}/report.html?{period}", token=token)
        self.assertEqual(status, 200)
        self.assertIn("项目 3.6", html)
        self.assertIn("<svg", html)
        self.assertIn(f"/api/v1/evidence/{exam_id}-picture", html)
        self.assertNotIn("http://", html.replace("http://www.w3.org", ""))

        # Another city's supervisor: the org looks like one without sessions, its
        # evidence like evidence that does not exist.
        other = subprocess.run([SERVER, "-c", str(conf), "token", "create", "--role", "city",
                                "--city", "city-99", "--name", "other"],
                               capture_output=True, text=True, check=True).stdout.strip()
        status, od = https_request(srv.port, srv.ca, "GET",
                                   f"/api/v1/orgs/{ORG}/score?{period}", token=other)
        status_missing, md = https_request(srv.port, srv.ca, "GET",
                                           f"/api/v1/orgs/no-such-org/score?{period}",
                                           token=other)
        self.assertEqual((status, od["sessions"], od["score"]), (200, [], None))
        self.assertEqual((status_missing, md["sessions"], md["score"]), (200, [], None))
        status, _ = https_request(srv.port, srv.ca, "GET",
                                  f"/api/v1/evidence/{exam_id}-picture", token=other)
        self.assertEqual(status, 404)

        # Publish, change the rubric, and the published score keeps what it was.
        status, pub = https_request(srv.port, srv.ca, "POST",
                                    f"/api/v1/orgs/{ORG}/score/publish?{period}", token=token)
        self.assertEqual(status, 201, pub)
        self.assertEqual(pub["rubric_version"], "3334d40b6acd")
        self.assertEqual(pub["score"], doc["score"])
        # A rubric that gives 5 to any connected session: a different score, same data (the
        # agent here keeps no recordings, so records kept is 0 and the default gives 1).
        conf.write_text(conf.read_text().replace(
            "[score]\n", "[score]\nfull_pct = 0\nstep4 = 0\nstep3 = 0\nstep2 = 0\n"))
        srv.proc.send(signal.SIGHUP)
        srv.proc.wait_for_output(r"event=rubric_applied version=(?!3334d40b6acd)", 20,
                                 what="the new rubric applied")
        now = get_json(srv, f"/api/v1/orgs/{ORG}/score?{period}")
        self.assertNotEqual(now["rubric"]["version"], "3334d40b6acd")
        self.assertEqual(now["rubric"]["params"]["full_pct"], 0)
        self.assertEqual(now["score"], 5)
        self.assertEqual(now["sessions"][0]["criteria"], sess["criteria"])
        listed = get_json(srv, f"/api/v1/orgs/{ORG}/score/published")["published"]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["rubric_version"], "3334d40b6acd")
        self.assertEqual(listed[0]["score"], doc["score"])
        self.assertEqual(listed[0]["document"]["rubric"]["params"]["full_pct"], 99)
        self.assertEqual(listed[0]["document"]["score"], doc["score"])
        self.assertNotEqual(now["score"], listed[0]["score"])

        # The CLI computes what the API served, and --explain shows the steps; --config
        # scores under another file's rubric without touching the server's.
        srv.proc.stop()
        base = h.server_config(state, name="base.ini", extra=store)
        out = h.run("score-cli", [SERVER, "-c", base, "score", "--org", ORG, "--from",
                                  str(start - 3600_000), "--to", str(end + 3600_000),
                                  "--explain"]).stdout()
        self.assertIn(f"session {exam_id} S-0001 site {SITE}", out)
        self.assertIn("picture    class credits: ok ", out)
        self.assertIn("(mean over 2 targets)", out)
        self.assertIn(f"= {pic['fraction'] * 100:.2f} %", out)
        self.assertIn("rubric 3334d40b6acd", out)
        self.assertIn(f"score {doc['score']} (", out)
        out = h.run("score-cli", [SERVER, "-c", base, "score", "--org", ORG, "--from",
                                  str(start - 3600_000), "--to", str(end + 3600_000),
                                  "--config", conf]).stdout()
        self.assertIn("score 5 (", out)


if __name__ == "__main__":
    main()
