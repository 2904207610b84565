#!/usr/bin/python3
"""/public/ at a province's size (issue 12 E): one published draw of N = 5,000 inspections
(half of them with a published result) written into inspect.db as the draw and inspections
modules store them, then every public view fetched 7 times over one keep-alive connection.
Prints each body's size and the median/min/max time. Not a ctest: a measurement.

    /usr/bin/python3 tests/bench/bench_public.py      (uses build/venuewatch-server)
"""
import sys, json, time, sqlite3, ssl, http.client, statistics
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import IntegrationTest
N = 5000
class M(IntegrationTest):
    def test_m(self):
        h=self.h; state=h.path("srv"); conf=h.server_config(state); h.ca_init(conf)
        srv=h.start_server(conf, state); db=f"{state}/inspect.db"
        now=int(time.time()*1000)
        insp=[{"seq":i+1,"org":f"org-{i}","city":"济南市","risk":"high","mode":"onsite","session":None,"finding":"no_session","inspectors":["I1","I2"],"skipped":[]} for i in range(N)]
        man={"draw":"big","plan":{"grades":[{"risk":"high","ratio_bp":10000,"min":1}],"window":{"from":"2026-12-01","to":"2026-12-14"}},
             "targets":[{"org":f"org-{i}","name":f"机构{i}","city":"济南市"} for i in range(N)],
             "inspectors":[{"id":"I1","name":"甲"},{"id":"I2","name":"乙"}],"commitment":"c"*64,"randomness":{"sources":[]}}
        doc=json.dumps({"manifest":man,"reveal":{"values":[],"secret":"d"*64},"inspections":insp,"strata":[]},ensure_ascii=False)
        c=sqlite3.connect(db, timeout=10)
        with c:
            c.execute("INSERT INTO draws(id,scope_city,state,plan,manifest,manifest_sha256,document,created_ms,committed_ms,executed_ms,published_ms,actor) VALUES('big','济南市','published','{}',?,?,?,?,?,?,?,'m')",(json.dumps(man,ensure_ascii=False),"a"*64,doc,now,now,now,now))
            c.executemany("INSERT INTO inspections(draw,seq,org,city,mode,finding,state,outcome,findings,published_ms) VALUES('big',?,?,'济南市','onsite','no_session',?,?,?,?)",
                [(i+1,f"org-{i}","published" if i%2 else "assigned","rectify" if i%2 else "","问题"*10 if i%2 else "",now if i%2 else 0) for i in range(N)])
        ctx=ssl.create_default_context(cafile=str(srv.ca))
        for path in ["/public/api/results","/public/results.csv","/public/","/public/api/draws/big","/public/draws/big","/public/draws/big.csv"]:
            ts=[]; size=0
            conn=http.client.HTTPSConnection("127.0.0.1",srv.port,context=ctx,timeout=60)
            for k in range(7):
                t=time.perf_counter(); conn.request("GET",path); r=conn.getresponse(); b=r.read(); ts.append(time.perf_counter()-t); size=len(b)
                assert r.status==200,(path,r.status)
            conn.close()
            print(f"{path}: {size/1024:.0f} KiB median {statistics.median(ts)*1000:.0f} ms (min {min(ts)*1000:.0f}, max {max(ts)*1000:.0f})", flush=True)
if __name__=="__main__":
    import unittest; unittest.main(argv=["x","M.test_m"])
