#!/usr/bin/env python3
"""Issue 12 B: the registers (一单两库) against a real server — targets, inspectors and items
written as JSON and imported as CSV through the API and the CLI; a bad row names its field
([i].field) or its line (line N: column: what) and nothing of the request is kept; a city token
manages its own city's targets and inspectors only and reads the province's items; the CSV export
reads back through the import as unchanged; every change is a numbered version in the history,
and audited."""
import http.client
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, exchange, main,  # noqa: E402
                     query)


def token(srv, role, name, city=None):
    argv = [SERVER, "-c", str(srv.conf), "token", "create", "--role", role, "--name", name]
    if city:
        argv += ["--city", city]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60 * TIMEOUT_SCALE)
    if out.returncode != 0 or not out.stdout.startswith("vwt_"):
        raise AssertionError(f"token create failed: {out.stderr}")
    return out.stdout.strip()


def api(srv, method, path, tok, body=None, content_type=None):
    """(status, JSON or text, headers); a str body with content_type goes as it is."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx,
                                       timeout=30 * TIMEOUT_SCALE)
    try:
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        if content_type:
            headers["Content-Type"] = content_type
            body = body.encode("utf-8") if isinstance(body, str) else body
        return exchange(conn, method, path, body, headers)
    finally:
        conn.close()


JN, QD = "济南市", "青岛市"
TARGETS = [
    {"org": "org-a", "name": "某某职业技能培训学校", "city": JN, "level": "city",
     "occupations": ["电工", "焊工"], "risk": "high", "sites": ["site-a1", "site-a2"]},
    {"org": "org-b", "name": "乙培训中心", "city": JN, "level": "province", "occupations": [],
     "risk": "low", "sites": ["site-b1"]},
    {"org": "org-q", "name": "青岛评价中心", "city": QD, "level": "city",
     "occupations": ["育婴员"], "risk": "medium", "sites": []},
]

INSPECTORS_CSV = ("\ufeff编号,姓名,所在城市,部门,关联机构,不可用日期\r\n"
                  "I001,张三,济南市,职业能力建设处,org-b:任职；org-q：亲属,2026-12-01..2026-12-05\r\n"
                  "I002,李四,济南市,监察支队,,2026-12-09\r\n"
                  "I003,王五,青岛市,,org-a:former,\r\n")


class Registers(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.srv = self.h.setup_server()
        self.prov = token(self.srv, "province", "省厅")
        self.jn = token(self.srv, "city", "济南市局", city=JN)
        self.inspect_db = self.srv.state_dir / "inspect.db"

    def cli(self, *args, check=True):
        return self.h.run("register", [SERVER, "-c", self.srv.conf, "register", *args],
                          check=check)

    def rows(self, register, tok=None, query_string=""):
        st, body, _ = api(self.srv, "GET", f"/api/v1/registers/{register}{query_string}",
                          tok or self.prov)
        self.assertEqual(st, 200, body)
        return body

    def test_json_upsert_versions_and_field_errors(self):
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.prov, TARGETS)
        self.assertEqual(st, 200, body)
        self.assertEqual((body["created"], body["version"]), (3, 3))
        got = self.rows("targets")
        self.assertEqual(got["version"], 3)
        self.assertEqual([r["org"] for r in got["rows"]], ["org-a", "org-b", "org-q"])
        self.assertEqual({k: v for k, v in got["rows"][0].items() if k != "version"}, TARGETS[0])

        # A bad row anywhere: 422 naming [i].field, and nothing of the request is stored.
        bad = [dict(TARGETS[0], name="改名"), dict(TARGETS[1], risk="extreme")]
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.prov, bad)
        self.assertEqual(st, 422, body)
        self.assertEqual(body["field"], "[1].risk")
        self.assertIn("high, medium, low", body["error"])
        bad = [{"org": "org-x", "name": "x", "city": JN, "level": "县级", "risk": "low"}]
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.prov, bad)
        self.assertEqual((st, body["field"]), (422, "[0].level"))
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/inspectors", self.prov,
                          {"id": "I9", "name": "n", "city": JN,
                           "away": [["2026-12-05", "2026-12-01"]]})
        self.assertEqual((st, body["field"]), (422, "away[0]"))
        self.assertEqual(self.rows("targets")["rows"][0]["name"], TARGETS[0]["name"])
        self.assertEqual(self.rows("targets")["version"], 3)

        # An unchanged row changes nothing; an edit bumps the registers' and the row's version;
        # a stale version is a conflict.
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.prov, TARGETS[0])
        self.assertEqual((st, body["unchanged"], body["version"]), (200, 1, 3))
        edit = dict(TARGETS[0], risk="medium", version=1)
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.prov, edit)
        self.assertEqual((st, body["updated"], body["version"]), (200, 1, 4), body)
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.prov, edit)
        self.assertEqual((st, body["field"]), (409, "version"), body)
        row = self.rows("targets")["rows"][0]
        self.assertEqual((row["risk"], row["version"]), ("medium", 4))

        # The history: every change numbered, with before and after.
        st, body, _ = api(self.srv, "GET", "/api/v1/registers/changes?register=targets&after=2",
                          self.prov)
        self.assertEqual(st, 200, body)
        self.assertEqual([(c["version"], c["key"], c["action"]) for c in body["changes"]],
                         [(3, "org-q", "create"), (4, "org-a", "update")])
        self.assertEqual(body["changes"][1]["before"]["risk"], "high")
        self.assertEqual(body["changes"][1]["after"]["risk"], "medium")
        self.assertEqual(body["next"], 4)
        st, body, _ = api(self.srv, "GET", "/api/v1/registers/changes?after=0&limit=2", self.prov)
        self.assertEqual((len(body["changes"]), body["more"], body["next"]), (2, True, 2))

        # Deleted: gone from the register, kept in the history, audited.
        st, body, _ = api(self.srv, "DELETE", "/api/v1/registers/targets/org-b", self.prov)
        self.assertEqual((st, body["version"]), (200, 5), body)
        st, body, _ = api(self.srv, "DELETE", "/api/v1/registers/targets/org-b", self.prov)
        self.assertEqual(st, 404)
        self.assertEqual(query(self.inspect_db, "SELECT action, before IS NOT NULL, after IS NULL"
                               " FROM register_changes WHERE version = 5"), [("delete", 1, 1)])
        # A bulk edit is one audit row (the loop thread writes each synchronously).
        items = [{"id": f"item-{i}", "title": f"事项{i}", "basis": "《办法》", "method": "现场检查"}
                 for i in range(25)]
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/items", self.prov, items)
        self.assertEqual((st, body["created"], body["version"]), (200, 25, 30), body)
        audit = self.h.run("audit", [SERVER, "-c", self.srv.conf, "audit"]).stdout()
        for want in ("register_put", "targets/org-a", "register_delete", "targets/org-b",
                     "items/*", "rows=25 created=25 updated=0 unchanged=0 versions=6..30"):
            self.assertIn(want, audit)
        self.assertNotIn("items/item-3", audit)
        st, body, _ = api(self.srv, "GET", "/api/v1/registers/nosuch", self.prov)
        self.assertEqual(st, 404)

    def test_city_scope(self):
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.prov, TARGETS)
        self.assertEqual(st, 200, body)
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/items", self.prov,
                          [{"id": "item-1", "title": "考评场所视频监控", "basis": "《办法》第十二条",
                            "method": "远程核查"}])
        self.assertEqual(st, 200, body)
        # Reads: its own city's targets only, whatever ?city= asks; every item.
        self.assertEqual([r["org"] for r in self.rows("targets", self.jn)["rows"]],
                         ["org-a", "org-b"])
        self.assertEqual(self.rows("targets", self.jn, f"?city={quote(QD)}")["rows"], [])
        self.assertEqual([r["org"] for r in self.rows("targets", self.prov,
                                                      f"?city={quote(QD)}")["rows"]], ["org-q"])
        self.assertEqual([r["id"] for r in self.rows("items", self.jn)["rows"]], ["item-1"])
        # Writes: its own city's rows; not another city's, not over another city's key.
        mine = {"org": "org-c", "name": "丙学校", "city": JN, "level": "city", "risk": "low"}
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.jn, [mine])
        self.assertEqual((st, body["created"]), (200, 1), body)
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.jn,
                          [dict(mine, org="org-d"), dict(mine, org="org-e", city=QD)])
        self.assertEqual((st, body["field"]), (403, "[1].city"), body)
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets", self.jn,
                          [dict(mine, org="org-q")])
        self.assertEqual((st, body["field"]), (403, "[0].org"), body)
        self.assertEqual(self.rows("targets")["rows"][3]["city"], QD)  # org-q untouched
        self.assertNotIn("org-d", [r["org"] for r in self.rows("targets")["rows"]])
        st, _, _ = api(self.srv, "DELETE", "/api/v1/registers/targets/org-q", self.jn)
        self.assertEqual(st, 404)
        st, _, _ = api(self.srv, "POST", "/api/v1/registers/items", self.jn,
                       {"id": "item-2", "title": "t", "basis": "b", "method": "m"})
        self.assertEqual(st, 403)
        st, _, _ = api(self.srv, "DELETE", "/api/v1/registers/items/item-1", self.jn)
        self.assertEqual(st, 403)
        # Its history: its own city's rows and the items, never another city's.
        st, body, _ = api(self.srv, "GET", "/api/v1/registers/changes", self.jn)
        keys = {c["key"] for c in body["changes"]}
        self.assertEqual(keys, {"org-a", "org-b", "org-c", "item-1"})
        # An org token is not admitted at all.
        org = subprocess.run([SERVER, "-c", str(self.srv.conf), "token", "create", "--role", "org",
                              "--org", "org-a", "--name", "o"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=60 * TIMEOUT_SCALE).stdout.strip()
        st, _, _ = api(self.srv, "GET", "/api/v1/registers/targets", org)
        self.assertEqual(st, 403)
        st, _, _ = api(self.srv, "GET", "/api/v1/registers/targets", None)
        self.assertEqual(st, 401)

    def test_csv_import_api_and_cli_export_round_trip(self):
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/inspectors/import", self.prov,
                          INSPECTORS_CSV, "text/csv")
        self.assertEqual((st, body.get("created")), (200, 3), body)
        i1 = self.rows("inspectors")["rows"][0]
        self.assertEqual(i1["ties"], [{"org": "org-b", "kind": "affiliation"},
                                      {"org": "org-q", "kind": "relative"}])
        self.assertEqual(i1["away"], [["2026-12-01", "2026-12-05"]])

        # A file with errors: each named by line and column, nothing imported.
        bad = ("编号,姓名,所在城市,关联机构,不可用日期\n"
               "I004,赵六,济南市,org-a:朋友,\n"
               "I005,钱七,济南市,,2026-02-30\n"
               "I006,孙八,济南市,,\n")
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/inspectors/import", self.prov,
                          bad, "text/csv")
        self.assertEqual(st, 422, body)
        self.assertEqual(body["errors"], [
            "line 2: 关联机构: ties[0].kind: expected affiliation, former or relative "
            "(任职, 曾任职, 亲属)",
            "line 3: 不可用日期: away[0]: expected dates YYYY-MM-DD"])
        self.assertEqual(len(self.rows("inspectors")["rows"]), 3)
        # A city importing a file with another city's row: the row's line, nothing imported.
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/inspectors/import", self.jn,
                          "id,name,city\nI007,周九,济南市\nI008,吴十,青岛市\n", "text/csv")
        self.assertEqual(st, 403, body)
        self.assertEqual(body["errors"], ["line 3: city: must be your own city"])
        self.assertEqual(len(self.rows("inspectors")["rows"]), 3)

        # The CLI: targets from a file with Chinese headers and labels; errors as file:line.
        f = self.h.write("targets.csv", "机构编号,机构名称,所在城市,备案级别,职业,风险等级,考点\n"
                                        "org-a,甲学校,济南市,市级,电工;焊工,高风险,site-a1\n"
                                        "org-q,青岛中心,青岛市,省级,,低风险,site-q1;site-q2\n")
        out = self.cli("import", "--kind", "targets", "--file", f, "--actor", "张科长").stdout()
        self.assertIn("imported 2 targets", out)
        rows = self.rows("targets")["rows"]
        self.assertEqual((rows[0]["level"], rows[0]["risk"], rows[1]["sites"]),
                         ("city", "high", ["site-q1", "site-q2"]))
        badf = self.h.write("bad.csv", "org,name,city,level,risk\norg-z,z,济南市,city,none\n")
        p = self.cli("import", "--kind", "targets", "--file", badf, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{badf}:2: risk: expected a risk grade", p.stderr())
        self.assertIn("nothing imported", p.stderr())
        listed = self.cli("list", "--kind", "targets").stdout()
        self.assertIn("org-q", listed)
        self.assertIn("2 targets", listed)

        # Export (API and CLI agree) and import it back: every row unchanged, no new version.
        version = self.rows("targets")["version"]
        st, csv_text, hdrs = api(self.srv, "GET", "/api/v1/registers/targets.csv", self.prov)
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/csv"))
        self.assertTrue(csv_text.startswith('"org","name","city","level","occupations","risk",'
                                            '"sites"\r\n'), csv_text[:80])
        self.assertIn("电工;焊工", csv_text)
        cli_csv = self.cli("export", "--kind", "targets").stdout()
        # (the Proc's text mode reads CRLF as LF)
        self.assertEqual(cli_csv, csv_text.replace("\r\n", "\n"))
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/targets/import", self.prov,
                          csv_text, "text/csv")
        self.assertEqual((st, body["unchanged"], body["version"]), (200, 2, version), body)
        st, icsv, _ = api(self.srv, "GET", "/api/v1/registers/inspectors.csv", self.prov)
        self.assertIn("org-b:affiliation;org-q:relative", icsv)
        st, body, _ = api(self.srv, "POST", "/api/v1/registers/inspectors/import", self.prov,
                          icsv, "text/csv")
        self.assertEqual((st, body["unchanged"]), (200, 3), body)
        # The city's export holds its own city's rows only.
        st, jcsv, _ = api(self.srv, "GET", "/api/v1/registers/targets.csv", self.jn)
        self.assertNotIn("org-q", jcsv)
        self.assertIn("org-a", jcsv)
        # The import's actor in the history and the audit.
        self.assertIn(("cli:张科长",), query(self.inspect_db,
                                             "SELECT DISTINCT actor FROM register_changes"))
        self.assertIn("register_import", self.h.run("audit", [SERVER, "-c", self.srv.conf,
                                                              "audit"]).stdout())


if __name__ == "__main__":
    main()
