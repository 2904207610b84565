"""Helpers for the security tests, on top of the integration harness (tests/integration).

Everything is real: the server's own CLI makes CAs, certificates and tokens; the openssl CLI
makes the certificates the server must refuse (self-signed, expired, not yet valid); requests
go over TLS with Python's ssl module.
"""

import http.client
import os
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from harness import (AGENT, SERVER, IntegrationTest, Pki, exchange, main,  # noqa: E402,F401
                     query, wait_for)

ORG = "org-sec"
# An ingest result as the agent encodes it (see common/result.c).
RESULT = {"seq": 1, "ts": "2026-11-26T19:11:18.123Z", "mono_ms": 1000, "kind": "stream",
          "target": "cam-1", "status": "ok", "codec": "h264", "faults": [],
          "metrics": {"width": 1280, "height": 720, "fps": 25}}


def batch(site, seq=1, target="cam-1"):
    return {"site": site, "agent": site, "results": [dict(RESULT, seq=seq, target=target)]}


def with_token(path, token):
    """The bearer token for a request: as the Authorization header (RFC 6750 2.1)."""
    if token is None:
        return path, {}
    return path, {"Authorization": f"Bearer {token}"}


def client_context(server, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(server.ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def request(server, method, path, body=None, cert=None, key=None, token=None, headers=None,
            conn=None, timeout=10):
    """One request; returns (status, parsed JSON or text, response headers). conn: an open
    HTTPSConnection to reuse (keep-alive), else a new one is made and closed."""
    path, extra = with_token(path, token)
    own = conn is None
    if own:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port,
                                           context=client_context(server, cert, key),
                                           timeout=timeout)
    try:
        return exchange(conn, method, path, body, dict(extra, **(headers or {})))
    finally:
        if own:
            conn.close()


def handshake_refused(server, cert, key):
    """True when the server refuses this client certificate. With TLS 1.3 the client's
    handshake completes before the server has checked it, so the refusal (an alert) arrives
    at the first read: make a request and expect it to fail."""
    try:
        status, body, _ = request(server, "POST", "/api/v1/speedtest", b"x", cert, key)
    except (ssl.SSLError, ConnectionError, http.client.HTTPException):
        return True
    raise AssertionError(f"server accepted the certificate: {status} {body!r}")


def cli(h, server, *args, check=True, name="cli"):
    """Runs venuewatch-server -c CONF ARGS...; returns the exited Proc."""
    conf = server if isinstance(server, (str, Path)) else server.conf
    return h.run(name, [SERVER, "-c", conf, *args], check=check)


def enroll_token(h, server, site, org=ORG, city="jinan", ttl=None):
    args = ["enroll-token", "--site", site, "--org", org, "--city", city]
    if ttl:
        args += ["--ttl", ttl]
    p = cli(h, server, *args, name="enroll-token")
    return p.stdout().strip()


def people_token(h, server, role, city=None, name="tester", inspector=None):
    args = ["token", "create", "--role", role, "--name", name]
    if city:
        args += ["--city", city]
    if role == "inspector":  # issue 12 D: bound to his id in the inspectors' register
        args += ["--inspector", inspector or "I-none"]
    p = cli(h, server, *args, name="token-create")
    token = p.stdout().strip()
    assert token.startswith("vwt_"), p.tail()
    return token


def openssl(h, *args, name="openssl"):
    return h.run(name, ["openssl", *[str(a) for a in args]])


def sign_with_dates(h, server, name, cn, start, end, city="jinan"):
    """A client certificate from the server's own CA with the validity window given
    (YYYYMMDDHHMMSSZ), made with `openssl ca`: the server's CLI issues only current
    certificates, and expired or future ones are what this is for."""
    d = h.path(name)
    d.mkdir(parents=True, exist_ok=True)
    pki = server.state_dir / "pki"
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    cnf = d / "ca.cnf"
    cnf.write_text(f"""\
[ca]
default_ca = this
[this]
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = any
x509_extensions = leaf
unique_subject = no
[any]
commonName = supplied
organizationName = optional
localityName = optional
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
""")
    openssl(h, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-subj", f"/CN={cn}/O={ORG}/L={city}", "-keyout", d / "agent.key",
            "-out", d / "agent.csr")
    openssl(h, "ca", "-batch", "-config", cnf, "-cert", pki / "ca.crt", "-keyfile",
            pki / "ca.key", "-in", d / "agent.csr", "-out", d / "agent.crt", "-notext",
            "-startdate", start, "-enddate", end)
    return Pki(d)


def make_csr(h, name, cn="whoever"):
    d = h.path(name)
    d.mkdir(parents=True, exist_ok=True)
    openssl(h, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-subj", f"/CN={cn}/O=evil/L=elsewhere", "-keyout", d / "req.key",
            "-out", d / "req.csr")
    return (d / "req.csr").read_text(), d / "req.key"


def agent_config(h, name, site, server, cert, key, ca=None):
    """A minimal agent configuration: enrollment reads only [agent] and [collector]."""
    return h.write(name, f"""\
[agent]
site = {site}
org = {ORG}
state_dir = {h.path(name + '.state')}

[collector]
url = {server.url}
ca = {ca or server.ca}
cert = {cert}
key = {key}

[room hall-1]
min_cameras = 1

[camera front]
room = hall-1
url = rtsp://127.0.0.1:9/front
""")


def log_count(server, pattern):
    import re
    return len(re.findall(pattern, server.proc.stderr(), re.M))


os.environ.setdefault("VW_TIMEOUT_SCALE", "1")
