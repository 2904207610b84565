#!/usr/bin/env python3
"""An independent implementation of the draw `venuewatch-draw/1`, written from docs/DRAW.md
(standard library only: hashlib, hmac for HKDF). Usage: draw_ref.py VECTOR.json [...]
Computes the manifest, the private part and the document (replacements applied in order) from a
test vector's inputs and compares them with its expected ones byte for byte; exit 1 on a
difference, naming the first differing path."""
import hashlib
import hmac
import json
import sys
from datetime import date as Date, datetime, timedelta, timezone

SALT = b"venuewatch-draw-1"
FORMAT = "venuewatch-draw/1"


def canon(x):
    return json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha(x):
    return hashlib.sha256(canon(x).encode()).hexdigest()


def extract(ikm):
    return hmac.new(SALT, ikm, hashlib.sha256).digest()


def expand(prk, info, n):
    out, t, c = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([c]), hashlib.sha256).digest()
        out += t
        c += 1
    return out[:n]


class Stream:
    def __init__(self, prk, label):
        self.prk, self.label, self.c, self.words = prk, label, 0, []

    def word(self):
        if not self.words:
            blk = expand(self.prk, self.label + b"\0" + self.c.to_bytes(4, "big"), 32)
            self.words = [int.from_bytes(blk[i:i + 8], "big") for i in range(0, 32, 8)]
            self.c += 1
        return self.words.pop(0)

    def uniform(self, n):
        r = (1 << 64) % n
        while True:
            x = self.word()
            if r == 0 or x < (1 << 64) - r:
                return x % n


def parse_time(s):
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    d = datetime.fromisoformat(s)
    if d.utcoffset() != timedelta(0):
        raise ValueError("not UTC: " + s)
    return d


def fmt_time(d):
    d = d.astimezone(timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def local_date(d):
    return (d.astimezone(timezone.utc) + timedelta(hours=8)).date().isoformat()


def canonical_value(v, form):
    nums, cur = [], ""
    for ch in v + " ":
        if ch.isdigit() and ch.isascii():
            cur += ch
        elif ch in " \t\n\r,.+-":
            if cur:
                nums.append(int(cur))
            cur = ""
        else:
            raise ValueError("not a digit or separator: %r" % ch)
    if not nums:
        raise ValueError("no number")
    if form == "sorted":
        nums.sort()
    return ".".join(str(n) for n in nums) + "/"


def normalise_plan(p):
    grades = []
    for g in p["grades"]:
        bp = g["ratio_bp"] if "ratio_bp" in g else round(g["ratio"] * 10000)
        grades.append({"risk": g["risk"], "ratio_bp": bp, "min": g.get("min", 0)})
    scope = p.get("scope_city", "")
    rec = p.get("recusal", {})
    return {"scope_city": scope, "grades": grades, "inspectors_per": p.get("inspectors_per", 2),
            "recusal": {"ties": True, "home_city": bool(rec.get("home_city", False)) and scope == "",
                        "same_pair": rec.get("same_pair", True)},
            "window": {"from": p["window"]["from"], "to": p["window"]["to"]},
            "mode": p.get("mode", "onsite"), "items": list(p.get("items", []))}


def commit(inp, commitment):
    plan = normalise_plan(inp["plan"])
    scope = plan["scope_city"]
    targets = sorted(({"org": t["org"], "name": t["name"], "city": t["city"], "level": t["level"],
                       "occupations": t["occupations"], "risk": t["risk"],
                       "sites": sorted(t["sites"])}
                      for t in inp["targets"] if not scope or t["city"] == scope),
                     key=lambda t: t["org"].encode())
    roster = sorted((i for i in inp["inspectors"] if not scope or i["city"] == scope),
                    key=lambda i: i["id"].encode())
    pub = [{"id": i["id"], "name": i["name"], "city": i["city"], "department": i["department"]}
           for i in roster]
    priv_rows = [{"id": i["id"],
                  "ties": sorted(({"org": t["org"], "kind": t["kind"]} for t in i.get("ties", [])),
                                 key=lambda t: (t["org"].encode(), t["kind"].encode())),
                  "away": sorted([list(a) for a in i.get("away", [])])} for i in roster]
    items = sorted(({"id": i["id"], "title": i["title"], "basis": i["basis"], "method": i["method"]}
                    for i in inp["items"]), key=lambda i: i["id"].encode())
    orgs = {t["org"] for t in targets}
    previous = sorted(({"org": p["org"], "inspectors": sorted(p["inspectors"])}
                       for p in inp["previous"] if p["org"] in orgs), key=lambda p: p["org"].encode())
    rnd = {k: [{"name": s["name"], "expected": fmt_time(parse_time(s["expected"])), "form": s["form"]}
               for s in inp["randomness"].get(k, [])] for k in ("sources", "replacements")}
    private = {"format": "venuewatch-draw-private/1", "draw": inp["id"], "salt": inp["salt"],
               "inspectors": priv_rows}
    manifest = {"algorithm": FORMAT, "draw": inp["id"], "created": fmt_time(parse_time(inp["created"])),
                "plan": plan, "targets": targets, "targets_sha256": sha(targets),
                "inspectors": pub, "inspectors_sha256": sha(pub), "items": items,
                "items_sha256": sha(items), "previous": previous, "private_sha256": sha(private),
                "randomness": rnd, "commitment": commitment}
    return manifest, private


class Draw:
    def __init__(self, manifest, private, secret):
        self.m, self.secret = manifest, bytes.fromhex(secret)
        self.M = bytes.fromhex(sha(manifest))
        plan = manifest["plan"]
        self.plan, self.per = plan, plan["inspectors_per"]
        self.province = plan["scope_city"] == ""
        self.roster = manifest["inspectors"]
        priv = {r["id"]: r for r in private["inspectors"]}
        self.ties = {i["id"]: {t["org"] for t in priv[i["id"]]["ties"]} for i in self.roster}
        self.away = {i["id"]: priv[i["id"]]["away"] for i in self.roster}
        self.prev = {p["org"]: set(p["inspectors"]) for p in manifest["previous"]}
        self.booked = {}  # (inspector, date) -> count
        self.targets = {t["org"]: t for t in manifest["targets"]}

    def prk(self, key):
        return extract(self.M + key.encode() + self.secret)

    def is_away(self, inspector, date):
        """With a date: it lies in an away range. Without one: the ranges cover the window."""
        ranges = self.away[inspector]
        if date:
            return any(a <= date <= b for a, b in ranges)
        w = self.plan["window"]
        days = set()
        for a, b in ranges:
            d, e = Date.fromisoformat(a), Date.fromisoformat(b)
            while d <= e:
                days.add(d.isoformat())
                d += timedelta(days=1)
        d, e = Date.fromisoformat(w["from"]), Date.fromisoformat(w["to"])
        while d <= e:
            if d.isoformat() not in days:
                return False
            d += timedelta(days=1)
        return True

    def pick(self, stream, t, date, chosen, need, looked):
        skipped, R = [], len(self.roster)
        looked = set(looked)
        while len(chosen) < need and len(looked) < R:
            i = stream.uniform(R)
            if i in looked:
                continue
            looked.add(i)
            c = self.roster[i]
            why = None
            if t["org"] in self.ties[c["id"]]:
                why = "recusal"
            elif self.is_away(c["id"], date):
                why = "away"
            elif date and self.booked.get((c["id"], date), 0) > 0:
                why = "booked"
            elif self.province and self.plan["recusal"]["home_city"] and c["city"] == t["city"]:
                why = "home_city"
            elif (self.plan["recusal"]["same_pair"] and t["org"] in self.prev
                  and len(chosen) == need - 1
                  and {self.roster[j]["id"] for j in chosen} | {c["id"]} == self.prev[t["org"]]):
                why = "same_pair"
            if why:
                skipped.append({"inspector": c["id"], "reason": why})
            else:
                chosen.append(i)
        return skipped

    def execute(self, values, sessions, executed):
        srcs = self.m["randomness"]["sources"]
        assert len(values) == len(srcs)
        canonical = [canonical_value(v, s["form"]) for v, s in zip(values, srcs)]
        prk = self.prk("".join(canonical))
        grades = [g["risk"] for g in self.plan["grades"]]
        strata = {}
        for t in self.m["targets"]:
            if t["risk"] in grades:
                key = (t["city"].encode() if self.province else b"", grades.index(t["risk"]))
                strata.setdefault(key, []).append(t)
        order, out_strata = [], []
        for key in sorted(strata):
            ts = strata[key]
            g = self.plan["grades"][key[1]]
            v = {t["org"]: expand(prk, b"target\0" + t["org"].encode(), 32) for t in ts}
            ts.sort(key=lambda t: (v[t["org"]], t["org"].encode()))
            n = len(ts)
            k = min(n, max(g["min"], -(-g["ratio_bp"] * n // 10000)))
            out_strata.append({"city": ts[0]["city"] if self.province else self.plan["scope_city"],
                               "risk": g["risk"], "population": n, "drawn": k})
            order += ts[:k]
        drawn = {t["org"] for t in order}
        w = self.plan["window"]
        kept = []
        for s in sessions:
            st = parse_time(s["start"])
            if s["org"] in drawn and w["from"] <= local_date(st) <= w["to"]:
                kept.append({"id": s["id"], "org": s["org"], "site": s["site"], "start": fmt_time(st),
                             "end": fmt_time(parse_time(s["end"])), "_t": st})
        kept.sort(key=lambda s: (s["org"].encode(), s["_t"], s["id"]))
        assert len({s["id"] for s in kept}) == len(kept)
        self.ins = []
        for seq, t in enumerate(order, 1):
            cands = [s for s in kept if s["org"] == t["org"]]
            slot, date = None, None
            if cands:
                slot = cands[Stream(prk, b"session\0" + t["org"].encode()).uniform(len(cands))]
                date = local_date(slot["_t"])
            chosen = []
            skipped = self.pick(Stream(prk, b"inspector\0" + t["org"].encode()), t, date, chosen,
                                self.per, [])
            for i in chosen:
                self.book(self.roster[i]["id"], date, 1)
            self.ins.append({"t": t, "slot": slot, "date": date, "n": len(cands), "m": chosen,
                             "skipped": skipped, "former": []})
        self.reps = []
        for s in kept:
            del s["_t"]
        self.doc = {"format": FORMAT, "manifest_sha256": self.M.hex(),
                    "executed": fmt_time(parse_time(executed)),
                    "reveal": {"values": values, "canonical": canonical, "secret": self.secret.hex()},
                    "sessions": kept, "strata": out_strata}

    def book(self, iid, date, d):
        if date:
            self.booked[(iid, date)] = self.booked.get((iid, date), 0) + d

    def replace(self, seq, out, reason, value, at):
        k = len(self.reps)
        src = self.m["randomness"]["replacements"][k]
        c = canonical_value(value, src["form"])
        prk = self.prk(c)
        ins = self.ins[seq - 1]
        t = ins["t"]
        idx = {r["id"]: i for i, r in enumerate(self.roster)}
        oi = idx[out]
        pos = ins["m"].index(oi)
        self.book(out, ins["date"], -1)
        rest = [j for j in ins["m"] if j != oi]
        stream = Stream(prk, b"replace\0" + t["org"].encode() + b"\0" + str(seq).encode())
        skipped = self.pick(stream, t, ins["date"], rest, len(rest) + 1, ins["m"] + ins["former"])
        new = rest[-1]
        ins["m"][pos] = new
        ins["former"].append(oi)
        self.book(self.roster[new]["id"], ins["date"], 1)
        self.reps.append({"seq": k + 1, "source": src["name"], "inspection": seq, "out": out,
                          "in": self.roster[new]["id"], "reason": reason, "value": value,
                          "canonical": c, "at": fmt_time(parse_time(at)), "skipped": skipped})

    def document(self):
        ins = []
        for seq, i in enumerate(self.ins, 1):
            s = i["slot"]
            ins.append({"seq": seq, "org": i["t"]["org"], "city": i["t"]["city"],
                        "risk": i["t"]["risk"], "mode": self.plan["mode"] if s else "remote",
                        "date": i["date"],
                        "session": {k: s[k] for k in ("id", "site", "start", "end")} if s else None,
                        "candidates": i["n"],
                        "finding": "unstaffed" if len(i["m"]) < self.per else "" if s else "no_session",
                        "inspectors": [self.roster[j]["id"] for j in i["m"]], "skipped": i["skipped"]})
        d = dict(self.doc, manifest=self.m, inspections=ins, replacements=self.reps)
        return d


def first_diff(a, b, path=""):
    if type(a) is not type(b):
        return path
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return path + "." + k
            p = first_diff(a[k], b[k], path + "." + k)
            if p:
                return p
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            p = first_diff(x, y, "%s[%d]" % (path, i))
            if p:
                return p
        return None if len(a) == len(b) else path + " (length)"
    return None if a == b else path


def run(path):
    vec = json.load(open(path, encoding="utf-8"))
    inp, exp = vec["input"], vec["expected"]
    commitment = hashlib.sha256(bytes.fromhex(inp["secret"])).hexdigest()
    manifest, private = commit(inp, commitment)
    d = Draw(manifest, private, inp["secret"])
    d.execute(inp["values"], inp["sessions"], inp["executed"])
    for r in inp.get("replacements", []):
        d.replace(r["seq"], r["out"], r["reason"], r["value"], r["at"])
    doc = d.document()
    ok = True
    for name, got, want in (("manifest_sha256", sha(manifest), exp["manifest_sha256"]),
                            ("private", canon(private), canon(exp["private"])),
                            ("document", canon(doc), canon(exp["document"]))):
        if got != want:
            ok = False
            where = ""
            if name != "manifest_sha256":
                where = " at " + str(first_diff(json.loads(got), json.loads(want), name))
            print("%s: %s differs from the expected one%s" % (path, name, where), file=sys.stderr)
    if ok:
        print("%s: ok (draw_ref.py, manifest_sha256 %s)" % (path, sha(manifest)))
    return ok


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if all([run(p) for p in sys.argv[1:]]) else 1)
