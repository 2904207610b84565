#!/usr/bin/python3
"""The item-3.6 score's API under hostile data and hostile askers (issue 11's security
review): session codes that are markup or spreadsheet formulas, a city publishing an org it
does not wholly see, periods that would tie a reader up, and a session without credits
before one with them. A real server, real TLS, real tokens made by the server's own CLI;
the sessions and their credits are written to the store while the server is down, as the
organisation's import and the rollup would have left them.

    /usr/bin/python3 tests/security/test_score_security.py [-k PATTERN]
"""

import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import IntegrationTest, cli, main, request  # noqa: E402

HOUR = 3600_000
DAY = 24 * HOUR
T0 = 1780272000000  # 2026-06-01T00:00Z
PERIOD = f"from={T0 - DAY}&to={T0 + 10 * DAY}"
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SVG = "</title><svg onload=alert(1)>"
FORMULA = '=HYPERLINK("http://evil.example/","x")'
STREAM = 2  # enum store_class: STORE_CLASS_STREAM, the picture criterion's credits

# (org, city, site, code, start offset from T0)
SESSIONS = [
    ("org-a", "jinan", "site-a", XSS_IMG, 0),             # no credits at all
    ("org-a", "jinan", "site-a", XSS_SVG, 3 * HOUR),      # credited: cam-bad mostly unclear
    ("org-a", "qingdao", "site-q", FORMULA, DAY),          # org-a's other city
    ("org-c", "jinan", "site-c", "@SUM(1+1)", 2 * DAY),
]


def token(h, srv, role, city=None, org=None):
    args = ["token", "create", "--role", role, "--name", f"{role}-{org or city or 'all'}"]
    if city:
        args += ["--city", city]
    if org:
        args += ["--org", org]
    return cli(h, srv, *args, name="token-create").stdout().strip()


class ScoreSecurity(IntegrationTest):

    def setUp(self):
        super().setUp()
        h = self.h
        srv = h.setup_server()  # migrates the store
        srv.proc.stop()
        db = sqlite3.connect(str(srv.db))
        ids = []
        for org, city, site, code, off in SESSIONS:
            cur = db.execute(
                "INSERT INTO exam_sessions(org, city, site, code, occupation, level, start_ms,"
                " end_ms, rooms, candidates, created_ms, updated_ms)"
                " VALUES(?, ?, ?, ?, '电工', '四级', ?, ?, 'A101', 30, ?, ?)",
                (org, city, site, code, T0 + off, T0 + off + 2 * HOUR, T0, T0))
            ids.append(cur.lastrowid)
        self.ids = ids
        # The second session's picture: cam-bad clear 10 minutes of 120, cam-good all along.
        for target, ok in (("cam-bad", 10 * 60_000), ("cam-good", 2 * HOUR)):
            db.execute("INSERT INTO exam_credits(exam_id, cls, target, ok_ms, down_ms, results)"
                       " VALUES(?, ?, ?, ?, ?, 10)", (ids[1], STREAM, target, ok, 2 * HOUR - ok))
        db.commit()
        db.close()
        self.srv = srv = h.start_server(srv.conf, srv.state_dir)
        self.province = token(h, srv, "province")
        self.jinan = token(h, srv, "city", city="jinan")
        self.qingdao = token(h, srv, "city", city="qingdao")
        self.hangzhou = token(h, srv, "city", city="hangzhou")

    def get(self, tok, path):
        return request(self.srv, "GET", path, token=tok)

    def test_report_html_escapes_session_codes_and_forbids_scripts(self):
        st, html, hdrs = self.get(self.province, f"/api/v1/orgs/org-a/report.html?{PERIOD}")
        self.assertEqual(st, 200, html)
        for raw in (XSS_IMG, XSS_SVG, "<svg onload", "<img src"):
            self.assertNotIn(raw, html)
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", html)
        self.assertIn("&lt;/title&gt;&lt;svg onload=alert(1)&gt;", html)
        # Escaped in the timeline's <title> too, not only in the sessions' table.
        self.assertIn("<title>&lt;/title&gt;&lt;svg onload=alert(1)&gt; picture", html)
        headers = {k.lower(): v for k, v in hdrs.items()}
        self.assertEqual(headers.get("content-security-policy"),
                         "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
        self.assertEqual(headers.get("x-content-type-options"), "nosniff")

    def test_report_csv_turns_formulas_into_text(self):
        st, csv, _ = self.get(self.province, f"/api/v1/orgs/org-a/report.csv?{PERIOD}")
        self.assertEqual(st, 200, csv)
        self.assertIn('"\'=HYPERLINK(""http://evil.example/"",""x"")"', csv)
        self.assertNotIn('"=HYPERLINK', csv)
        st, csv, _ = self.get(self.province, f"/api/v1/orgs/org-c/report.csv?{PERIOD}")
        self.assertIn('"\'@SUM(1+1)"', csv)
        self.assertNotIn('"@SUM', csv)

    def test_credits_of_a_session_after_one_without_any_are_kept(self):
        st, doc, _ = self.get(self.province, f"/api/v1/orgs/org-a/score?{PERIOD}")
        self.assertEqual(st, 200, doc)
        worst = [(r["site"], r["target"]) for r in doc["reasons"]["picture"]]
        self.assertIn(("site-a", "cam-bad"), worst, doc["reasons"])
        self.assertEqual(worst[0], ("site-a", "cam-bad"), worst)  # 110 unclear minutes

    def test_publish_needs_the_whole_org_in_scope(self):
        def publish(tok, org):
            return request(self.srv, "POST", f"/api/v1/orgs/{org}/score/publish?{PERIOD}",
                           token=tok)

        # Another city's org and an org that does not exist: the same 404, nothing stored.
        st, body, _ = publish(self.hangzhou, "org-c")
        self.assertEqual(st, 404, body)
        st2, body2, _ = publish(self.jinan, "no-such-org")
        self.assertEqual((st2, body2), (st, body))
        # org-a has a session in qingdao: jinan sees only part of the org, and so does qingdao.
        for tok in (self.jinan, self.qingdao):
            st, body, _ = publish(tok, "org-a")
            self.assertEqual(st, 409, body)
            self.assertIn("outside your scope", body["detail"])
        st, body, _ = self.get(self.province, "/api/v1/orgs/org-a/score/published")
        self.assertEqual((st, body["published"]), (200, []), body)
        # Whole in scope: jinan publishes org-c, the province org-a.
        st, body, _ = publish(self.jinan, "org-c")
        self.assertEqual((st, body["scope_city"]), (201, "jinan"), body)
        st, body, _ = publish(self.province, "org-a")
        self.assertEqual(st, 201, body)
        self.assertEqual(len(body["document"]["sessions"]), 3)

    def test_published_pages_newest_first(self):
        ids = []
        for _ in range(3):
            st, body, _ = request(self.srv, "POST",
                                  f"/api/v1/orgs/org-c/score/publish?{PERIOD}",
                                  token=self.jinan)
            self.assertEqual(st, 201, body)
            ids.append(body["id"])
        base = "/api/v1/orgs/org-c/score/published"
        st, page, _ = self.get(self.province, base + "?limit=2")
        self.assertEqual([p["id"] for p in page["published"]], ids[:0:-1], page)
        self.assertEqual(page["next_before"], ids[1])
        st, page, _ = self.get(self.province, f"{base}?limit=2&before={page['next_before']}")
        self.assertEqual(([p["id"] for p in page["published"]], page["next_before"]),
                         ([ids[0]], None), page)
        # qingdao published none of them: its page is empty, not a page of others' rows.
        st, page, _ = self.get(self.qingdao, base)
        self.assertEqual((st, page["published"]), (200, []), page)
        for q, field in (("limit=101", "limit"), ("limit=0", "limit"), ("before=x", "before")):
            st, body, _ = self.get(self.province, f"{base}?{q}")
            self.assertEqual(st, 400, (q, body))
            self.assertIn(f"query parameter {field}", body["detail"])

    def test_periods_are_bounded(self):
        views = ("/api/v1/orgs/org-a/score", "/api/v1/sites/site-a/score",
                 "/api/v1/score/ranking", "/api/v1/orgs/org-a/report.html",
                 "/api/v1/orgs/org-a/report.csv")
        for view in views:
            # Five calendar years (with two leap days) plus a day: accepted.
            st, body, _ = self.get(self.province, f"{view}?from=2024-01-01&to=2029-01-02")
            self.assertEqual(st, 200, (view, body))
            for q, field in (("from=2020-01-01&to=2026-01-03", "to"),
                             ("from=1990-01-01&to=1990-02-01", "from"),
                             ("from=0&to=86400000", "from"),
                             ("from=2199-01-01&to=2201-01-02", "to"),
                             ("from=2026-01-01&to=99999999999999", "to")):
                st, body, _ = self.get(self.province, f"{view}?{q}")
                self.assertEqual(st, 400, (view, q, body))
                self.assertIn(f"query parameter {field}", body["detail"], (view, q))


if __name__ == "__main__":
    main()
