"""A loopback notification receiver for the notify tests: one http.server on 127.0.0.1 that
answers as a generic webhook, a DingTalk robot or a WeCom robot would, records every request,
and fails, refuses or hangs on demand.

    r = Receiver()                       # listening at once, on a port chosen by the kernel
    r.route("/ding", kind="dingtalk", secret="SEC...", fail_first=1)
    r.url("/ding")                       # http://127.0.0.1:PORT/ding
    r.calls("/ding")                     # every request so far: dicts of query, body, verdict
    r.close()

A DingTalk route checks the signature the way DingTalk documents it (timestamp within an hour,
sign = base64(HMAC-SHA256(secret, "timestamp\\nsecret"))) and answers errcode 310000 when it
does not match. fail_first=N answers the first N requests with HTTP 500 (webhook) or
errcode 130101 (robots, with HTTP 200, as the robots answer their own rate limit); hang=True
holds every request open until close(), answering nothing.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Route:
    def __init__(self, kind, secret, fail_first, hang, fail_always):
        self.kind = kind
        self.secret = secret
        self.fail_first = fail_first
        self.fail_always = fail_always
        self.hang = hang
        self.calls = []


class Receiver:
    def __init__(self):
        self._routes = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                receiver._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def route(self, path, kind="webhook", secret=None, fail_first=0, hang=False,
              fail_always=False):
        with self._lock:
            self._routes[path] = _Route(kind, secret, fail_first, hang, fail_always)

    def set_fail_always(self, path, value):
        with self._lock:
            self._routes[path].fail_always = value

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def calls(self, path):
        with self._lock:
            return list(self._routes[path].calls)

    def ok_calls(self, path):
        return [c for c in self.calls(path) if c["verdict"] == "ok"]

    def close(self):
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _verify_sign(self, route, query):
        ts = query.get("timestamp", [""])[0]
        sign = query.get("sign", [""])[0]  # parse_qs already undid the URL-encoding
        if not ts.isdigit() or abs(time.time() * 1000 - int(ts)) > 3600 * 1000:
            return False
        mac = hmac.new(route.secret.encode(), f"{ts}\n{route.secret}".encode(), hashlib.sha256)
        return hmac.compare_digest(base64.b64encode(mac.digest()).decode(), sign)

    def _handle(self, req):
        parsed = urllib.parse.urlsplit(req.path)
        query = urllib.parse.parse_qs(parsed.query)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length)
        with self._lock:
            route = self._routes.get(parsed.path)
        if route is None:
            req.send_response(404)
            req.end_headers()
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            body = None
        call = {"query": query, "body": body, "raw": raw, "verdict": None,
                "content_type": req.headers.get("Content-Type")}
        with self._lock:
            route.calls.append(call)
            n = len(route.calls)
        if route.hang:
            call["verdict"] = "hung"
            self._release.wait()
            return
        status, reply = 200, {"errcode": 0, "errmsg": "ok"}
        if route.kind == "dingtalk" and route.secret and not self._verify_sign(route, query):
            call["verdict"] = "bad_sign"
            reply = {"errcode": 310000, "errmsg": "sign not match"}
        elif body is None:
            call["verdict"] = "bad_body"
            status, reply = 400, {"errcode": 40035, "errmsg": "invalid body"}
        elif n <= route.fail_first or route.fail_always:
            call["verdict"] = "failed"
            if route.kind == "webhook":
                status, reply = 500, {"error": "receiver failing on purpose"}
            else:
                reply = {"errcode": 130101, "errmsg": "send too fast"}
        else:
            call["verdict"] = "ok"
        data = json.dumps(reply).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
