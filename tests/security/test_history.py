#!/usr/bin/python3
"""A site's history (GET /api/v1/sites/{site}/history, issue 16 E) through the real server:
scoped like the site's own page — another city's site answers 404 exactly like an unknown
one, for the history as for the site — and bad parameters answer 400 naming the parameter
(limit outside 1..1000, a malformed or forged cursor, an unknown kind, a bad time), never a
500 or a page of someone else's rows. Pages follow the cursor over the real HTTP path, and
the sites list shows the overview fields (status, criteria, in_session, open_problems).

    /usr/bin/python3 tests/security/test_history.py [-k PATTERN]
"""

import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, RESULT, IntegrationTest, main, people_token,  # noqa: E402
                        request, wait_for)


def results_batch(site, first_seq, n):
    """n results of site's agent: cameras and the collector target, one second apart."""
    rows = []
    for i in range(n):
        seq = first_seq + i
        net = i % 4 == 3
        rows.append(dict(RESULT, seq=seq, ts=f"2026-11-26T19:{seq // 60 % 60:02d}:{seq % 60:02d}.000Z",
                         mono_ms=1000 + seq, kind="network" if net else "stream",
                         target="collector" if net else f"cam-{i % 3}",
                         status="down" if seq % 5 == 0 and not net else "ok",
                         faults=["timeout"] if seq % 5 == 0 and not net else [],
                         metrics={"rtt_ms": 3} if net else RESULT["metrics"]))
        if net:
            rows[-1].pop("codec", None)
    return {"site": site, "agent": site, "results": rows}


class History(IntegrationTest):

    def setUp(self):
        super().setUp()
        h = self.h
        self.srv = srv = h.setup_server()
        for site, city in (("site-jn", "jinan"), ("site-qd", "qingdao")):
            pki = h.ca_issue(srv.conf, site, ORG, city=city)
            status, body, _ = request(srv, "POST", "/api/v1/ingest", results_batch(site, 1, 40),
                                      pki.cert, pki.key)
            self.assertEqual(status, 200, body)
        self.jinan = people_token(h, srv, "city", city="jinan", name="Jinan bureau")
        self.province = people_token(h, srv, "province", name="Province bureau")

    def get(self, path, token):
        return request(self.srv, "GET", path, token=token)

    def test_a_city_cannot_read_another_citys_history(self):
        status, body, _ = self.get("/api/v1/sites/site-qd/history", self.jinan)
        self.assertEqual(status, 404, body)
        self.assertEqual(body, {"error": "no such site"})
        # exactly what a site that does not exist answers
        status, unknown, _ = self.get("/api/v1/sites/site-nowhere/history", self.jinan)
        self.assertEqual((status, unknown), (404, body))
        # the same for every filter: nothing of the other city leaks through a parameter
        status, body, _ = self.get("/api/v1/sites/site-qd/history?kind=stream&target=cam-1"
                                   "&limit=1", self.jinan)
        self.assertEqual(status, 404, body)
        status, body, _ = self.get("/api/v1/sites/site-jn/history", self.jinan)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["site"], "site-jn")
        self.assertEqual(len(body["results"]), 40)
        self.assertEqual(body["next_cursor"], None)
        # the province reads both
        for site in ("site-jn", "site-qd"):
            status, body, _ = self.get(f"/api/v1/sites/{site}/history?limit=5", self.province)
            self.assertEqual(status, 200, body)
            self.assertEqual(len(body["results"]), 5)
        status, body, _ = self.get("/api/v1/sites/site-qd/history", None)
        self.assertEqual(status, 401, body)

    def test_bad_parameters_answer_400_naming_the_parameter(self):
        base = "/api/v1/sites/site-jn/history?"
        cases = [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=-1", "limit"),
                 ("limit=10x", "limit"), ("limit=", "limit"),
                 ("cursor=garbage", "cursor"), ("cursor=h1.10", "cursor"),
                 ("cursor=h1.10.0", "cursor"), ("cursor=h1.ffffffffffffffffff.1", "cursor"),
                 ("cursor=" + "a" * 200, "cursor"), ("cursor=h1.10.5%00", "cursor"),
                 ("kind=camera", "kind"), ("target=", "target"),
                 ("from=yesterday", "from"), ("to=2026-13-01", "to"),
                 ("from=2026-11-27&to=2026-11-26", "to")]
        for query, param in cases:
            status, body, _ = self.get(base + query, self.province)
            self.assertEqual(status, 400, (query, body))
            self.assertTrue(body["detail"].startswith(f"query parameter {param}:"),
                            (query, body))
        # a well-formed cursor that names no row is just a position: an empty page
        status, body, _ = self.get(base + "cursor=h1.1.1", self.province)
        self.assertEqual((status, body["results"], body["next_cursor"]), (200, [], None))

    def test_pages_follow_the_cursor_newest_first(self):
        seen = []
        url = "/api/v1/sites/site-jn/history?limit=7"
        pages = 0
        while True:
            status, body, _ = self.get(url, self.jinan)
            self.assertEqual(status, 200, body)
            pages += 1
            seen += [(r["ts"], r["seq"]) for r in body["results"]]
            for r in body["results"]:
                self.assertEqual(set(r), {"agent", "kind", "target", "status", "faults",
                                          "metrics", "session", "ts", "seq"})
            if body["next_cursor"] is None:
                break
            self.assertEqual(len(body["results"]), 7)
            url = ("/api/v1/sites/site-jn/history?limit=7&cursor="
                   + urllib.parse.quote(body["next_cursor"]))
        self.assertEqual(pages, 6)
        self.assertEqual([s for _, s in seen], list(range(40, 0, -1)))
        status, body, _ = self.get("/api/v1/sites/site-jn/history?kind=network&target=collector",
                                   self.jinan)
        self.assertEqual([r["seq"] for r in body["results"]], list(range(40, 0, -4)))
        status, body, _ = self.get("/api/v1/sites/site-jn/history?target=cam-1"
                                   "&from=2026-11-26T19:00:10Z&to=2026-11-26T19:00:20Z",
                                   self.jinan)
        self.assertEqual([r["seq"] for r in body["results"]], [17, 14, 11])
        self.assertEqual({r["target"] for r in body["results"]}, {"cam-1"})
        # a camera's down result keeps its faults
        status, body, _ = self.get("/api/v1/sites/site-jn/history?kind=stream&limit=1"
                                   "&to=2026-11-26T19:00:36Z", self.jinan)
        self.assertEqual([(r["seq"], r["status"], r["faults"]) for r in body["results"]],
                         [(35, "down", ["timeout"])])

    def test_the_sites_list_shows_status_and_criteria(self):
        status, body, _ = self.get("/api/v1/sites", self.jinan)
        self.assertEqual(status, 200, body)
        (site,) = body["sites"]
        self.assertEqual(site["site"], "site-jn")
        # the latest of cam-0/1/2 are seqs 37, 38, 39 (ok), of the collector seq 40 (ok)
        self.assertEqual(site["status"], "ok")
        self.assertEqual(site["cameras"], {"ok": 3, "degraded": 0, "down": 0})
        self.assertEqual(site["in_session"], False)
        self.assertEqual(site["open_problems"], 0)
        self.assertEqual(site["criteria"]["connected"], "ok")
        self.assertEqual(site["criteria"]["network"], "ok")
        self.assertEqual(site["criteria"]["coverage"], "unknown")
        self.assertEqual(site["criteria"]["recordings"], "unknown")
        self.assertEqual(site["criteria"]["picture"], "ok")
        status, one, _ = self.get("/api/v1/sites/site-jn", self.jinan)
        self.assertEqual(status, 200, one)
        for k in ("status", "criteria", "in_session", "open_problems", "cameras"):
            self.assertEqual(one[k], site[k], k)

    def test_the_list_filters_by_city_org_and_status_inside_the_scope(self):
        """?city=, ?org=, ?status= (issue 16 E2) only narrow what authz_site_visible lets
        through: a city asking for another city gets an empty list, not that city's sites."""
        h, srv = self.h, self.srv
        pki = h.ca_issue(srv.conf, "site-jn2", "org-other", city="jinan")
        b = results_batch("site-jn2", 1, 1)
        b["results"][0].update(status="down", faults=["black"])
        status, body, _ = request(srv, "POST", "/api/v1/ingest", b, pki.cert, pki.key)
        self.assertEqual(status, 200, body)

        def sites(query, token):
            status, body, _ = self.get("/api/v1/sites" + query, token)
            self.assertEqual(status, 200, (query, body))
            return [s["site"] for s in body["sites"]]

        self.assertEqual(sites("?city=qingdao", self.jinan), [])
        self.assertEqual(sites("?city=jinan", self.jinan), ["site-jn", "site-jn2"])
        self.assertEqual(sites("?org=org-other&city=qingdao", self.jinan), [])
        self.assertEqual(sites("?city=qingdao", self.province), ["site-qd"])
        self.assertEqual(sites("?city=nowhere", self.province), [])
        self.assertEqual(sites("?org=org-other", self.province), ["site-jn2"])
        self.assertEqual(sites("?status=down", self.province), ["site-jn2"])
        self.assertEqual(sites("?status=ok", self.province), ["site-jn", "site-qd"])
        self.assertEqual(sites("?city=jinan&status=ok", self.province), ["site-jn"])
        self.assertEqual(sites("?status=silent", self.province), [])
        self.assertEqual(sites("", self.province), ["site-jn", "site-jn2", "site-qd"])
        # the CSV takes the same filters, inside the same scope
        status, text, _ = self.get("/api/v1/sites.csv?city=qingdao", self.province)
        self.assertEqual(status, 200, text)
        rows = text.lstrip("\ufeff").strip().splitlines()
        self.assertEqual([r.split(",")[0].strip('"') for r in rows[1:]], ["site-qd"])
        status, text, _ = self.get("/api/v1/sites.csv?city=qingdao", self.jinan)
        self.assertEqual(len(text.lstrip("\ufeff").strip().splitlines()), 1, text)
        # bad values answer 400 naming the parameter
        for query, param in (("?status=bogus", "status"), ("?status=", None),
                             ("?city=" + "x" * 80, "city"), ("?org=a%00b", "org")):
            status, body, _ = self.get("/api/v1/sites" + query, self.province)
            if param is None:  # an empty value is no filter
                self.assertEqual(status, 200, (query, body))
                continue
            self.assertEqual(status, 400, (query, body))
            self.assertTrue(body["detail"].startswith(f"query parameter {param}:"),
                            (query, body))

    def test_open_problems_and_silence_show_in_the_list(self):
        """A down camera is an open problem of its site; a site that stops reporting for
        [feed] silent_after is "silent" in the list, and its next batch ends that."""
        h = self.h
        state = h.path("srv-silent")
        conf = h.server_config(state, name="srv-silent.ini",
                               extra="\n[feed]\nsilent_after = 2s\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        prov = people_token(h, srv, "province", name="Province bureau")
        pki = h.ca_issue(srv.conf, "site-s", ORG, city="jinan")

        def post(first_seq, status):
            b = results_batch("site-s", first_seq, 1)
            b["results"][0].update(status=status, faults=["black"] if status == "down" else [])
            st, body, _ = request(srv, "POST", "/api/v1/ingest", b, pki.cert, pki.key)
            self.assertEqual(st, 200, body)

        def site():
            st, body, _ = request(srv, "GET", "/api/v1/sites", token=prov)
            self.assertEqual(st, 200, body)
            (one,) = body["sites"]
            st, alone, _ = request(srv, "GET", "/api/v1/sites/site-s", token=prov)
            for k in ("status", "open_problems", "in_session", "criteria"):
                self.assertEqual(alone[k], one[k], k)
            return one

        post(1, "down")
        one = site()
        self.assertEqual((one["status"], one["open_problems"]), ("down", 1))
        self.assertEqual(one["criteria"]["picture"], "down")
        one = wait_for(lambda: (lambda s: s if s["status"] == "silent" else None)(site()),
                       30, "the site turns silent")
        self.assertEqual(one["open_problems"], 2)  # the camera's and site_silent
        post(2, "ok")
        one = site()
        self.assertEqual((one["status"], one["open_problems"]), ("ok", 0))


if __name__ == "__main__":
    main()
