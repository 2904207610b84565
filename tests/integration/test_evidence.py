#!/usr/bin/python3
"""The evidence for item 3.6, proven against real cameras, real files and a real network path.

    /usr/bin/python3 tests/integration/test_evidence.py [-k PATTERN]

- Picture: one camd camera per fault (streams pre-encoded once with the ffmpeg CLI, so camd
  spends no CPU on encoding), each yielding exactly its fault codes and no others.
- Isolation: hostile cameras (never answers, garbage, a huge SDP, endless redirects, a reset
  mid-stream) end within their deadline and do not delay a healthy camera.
- Recordings: segments made with the ffmpeg CLI under the configured pattern: a gap inside an
  exam session, a truncated file, none at all, retention shorter than the policy.
- camera_moved: `venuewatch-agent reference CAMERA`, then a different view.
- Coverage and the site assessment from what the checks found.
The network (high_rtt, packet_loss) is in test_evidence_net.py: it needs network namespaces.

See harness.py for the environment it needs.
"""

import json
import random
import resource
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import AGENT, TIMEOUT_SCALE, IntegrationTest, main  # noqa: E402

SITE, ORG, CITY = "site-ev", "org-ev", "city-01"
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"

# A healthy check reads the 2 s window plus connect and DESCRIBE (camd answers DESCRIBE at the
# next keyframe, <= 1 s). Deadlines below are upper bounds on a loaded 2-core box.
CHECK_TIMEOUT_S = 6
# "Ends within its deadline": the agent enforces it inside libavformat's I/O (interrupt
# callback), so a check that ignored it would run as long as the hostile camera talks, i.e. until
# the test's own timeout. Any finite bound proves it; half the deadline again leaves room for a
# loaded machine's scheduling delays after the deadline fired (closing, the result's hand-off).
WITHIN_DEADLINE_MS = CHECK_TIMEOUT_S * 1000 * (1 + 0.5 * TIMEOUT_SCALE)


# ---- media made at test time ----

def ffmpeg(*args):
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *map(str, args)], check=True,
                   timeout=120 * TIMEOUT_SCALE)


# Every clip: 1280x720 unless said otherwise, one keyframe a second (as cameras send), no
# B-frames (camd's file mode needs none). CBR with filler, as many cameras stream: a frozen
# camera then keeps sending a normal bitrate, the case stream servers miss.
CBR = ["-b:v", "1500k", "-minrate", "1500k", "-maxrate", "1500k", "-bufsize", "750k",
       "-x264-params", "nal-hrd=cbr"]
SCENE = "testsrc2=s={w}x{h}:r={fps}"  # moving, sharp, lit: a healthy picture
# A box walking across: the people in a room (overlay moves it; drawbox cannot in 5.1).
WALKER = ("[bg];color=c=white:s=120x240:r=25[box];"
          "[bg][box]overlay=x='mod(t*400,1100)':y=240:shortest=1")
CLIPS = {
    # name: (source, filters, fps, size, codec, extra encoder args)
    "ok": (SCENE, "", 25, (1280, 720), "h264", CBR),
    "black": ("color=c=black:s={w}x{h}:r={fps}", "", 25, (1280, 720), "h264", []),
    "frozen": ("smptebars=s={w}x{h}:r={fps}", "", 25, (1280, 720), "h264", CBR),
    "blurred": (SCENE, "gblur=sigma=8", 25, (1280, 720), "h264", CBR),
    # Dim and bright scenes with sensor noise (a real sensor's, stronger in low light): a
    # picture with content, not black and not a lens cap. Mean luma ~29 and ~242.
    "dark": (SCENE, "eq=contrast=0.5:brightness=-0.35,noise=alls=12:allf=t", 25, (1280, 720),
             "h264", CBR),
    "bright": (SCENE, "eq=contrast=0.3:brightness=0.4,noise=alls=12:allf=t", 25, (1280, 720),
               "h264", CBR),
    "lowres": (SCENE, "", 25, (640, 360), "h264", CBR),
    "lowfps": (SCENE, "", 5, (1280, 720), "h264", CBR),
    "h265": (SCENE, "", 25, (1280, 720), "h265",
             ["-b:v", "1500k", "-x265-params", "keyint=25:bframes=0:repeat-headers=1:log-level=error"]),
    # camera_moved: two views of one wider scene, as a camera turned on its mount sees.
    # testsrc has detail all over, as a room has (SSIM of the two views at 80 wide ~0.15);
    # a box walking across is the people in it.
    "view_a": ("testsrc=s=2560x1440:r={fps}", "crop=1280:720:0:0" + WALKER, 25, (1280, 720),
               "h264", CBR),
    "view_b": ("testsrc=s=2560x1440:r={fps}", "crop=1280:720:1280:720" + WALKER, 25,
               (1280, 720), "h264", CBR),
}


def make_clip(path, name, seconds=2):
    src, filters, fps, (w, h), codec, extra = CLIPS[name]
    graph = f"[0:v]{filters or 'null'},scale={w}:{h},format=yuv420p[v]"
    enc = ["-c:v", "libx265"] if codec == "h265" else ["-c:v", "libx264", "-bf", "0"]
    ffmpeg("-f", "lavfi", "-t", seconds, "-i", src.format(w=w, h=h, fps=fps),
           "-filter_complex", graph, "-map", "[v]", *enc, "-preset", "ultrafast", "-g", fps,
           *extra, "-f", "hevc" if codec == "h265" else "h264", path)


def camd_config(clipdir, names, auth=()):
    """camd behaviours serving each clip from its file (no encoding per client)."""
    behaviours = {}
    for n in names:
        _, _, fps, _, codec, _ = CLIPS[n]
        behaviours["f_" + n] = {"file": str(clipdir / f"{n}.{codec}"), "fps": fps, "codec": codec,
                                "help": f"pre-encoded {n}"}
    for n in auth:
        behaviours["f_auth_" + n] = dict(behaviours["f_" + n], auth=True)
    return {"behaviours": behaviours,
            "mounts": [f"{b}:{b[2:]}" for b in behaviours]}


class Clips:
    """Clips are made once per test run (a few seconds of ffmpeg), shared by the tests."""
    dir = None

    @classmethod
    def get(cls):
        if cls.dir is None:
            import tempfile
            d = Path(tempfile.mkdtemp(prefix="vw-clips-"))
            for n in CLIPS:
                make_clip(d / f"{n}.{CLIPS[n][4]}", n)
            cls.dir = d
        return cls.dir


# ---- agent runs ----

def agent_ini(h, name, cameras, rooms, collector, pki=None, extra=""):
    """cameras: [(name, url, room)]; rooms: {room: min_cameras}."""
    ca = pki.ca if pki else h.path("none-ca.crt")
    cert = pki.cert if pki else h.path("none.crt")
    key = pki.key if pki else h.path("none.key")
    lines = ["[agent]", f"site = {SITE}", f"org = {ORG}", f"state_dir = {h.path(name + '-state')}",
             f"check_timeout = {CHECK_TIMEOUT_S}s", "log_level = info", "",
             "[collector]", f"url = {collector}", f"ca = {ca}", f"cert = {cert}", f"key = {key}",
             "", "[network]", "samples = 3", "sample_gap = 50ms", "timeout = 2s", ""]
    for room, need in rooms.items():
        lines += [f"[room {room}]", f"min_cameras = {need}", ""]
    for cam, url, room, *cred in cameras:
        lines += [f"[camera {cam}]", f"room = {room}", f"url = {url}"]
        lines += [f"credentials = {cred[0]}"] if cred else []
        lines += [""]
    return h.write(name + ".ini", "\n".join(lines) + "\n" + extra)


def run_once(h, conf, timeout, name="once", args=("--once",), netns=None):
    """Run the agent to completion; returns (results by kind → {target: result}, seconds)."""
    argv = [AGENT, "-c", conf, *args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    t0 = time.monotonic()
    p = h.run(name, argv, timeout=timeout * TIMEOUT_SCALE)
    took = time.monotonic() - t0
    h.last_run = p
    out = {}
    for line in p.stdout().splitlines():
        r = json.loads(line)
        out.setdefault(r["kind"], {})[r["target"]] = r
    return out, took


def warm_mounts(port, names, deadline_s=40 * TIMEOUT_SCALE, creds=None):
    """Read one frame from each camd mount, retrying until it comes, before a test relies on a
    check's verdict: now and then the first client of a freshly started file mount gets the
    DESCRIBE answer and then no packets (a camd start-up race not yet found), which a check
    rightly reports as no_video. The tests judge the agent, not that race. creds: mount name ->
    "user:password" for the mounts that ask for them."""
    creds = creds or {}
    end = time.monotonic() + deadline_s
    pending = list(names)
    while pending:
        if time.monotonic() > end:
            raise AssertionError(f"camd mounts never delivered a frame: {pending}")
        procs = {n: subprocess.Popen(
            [FFMPEG, "-v", "quiet", "-nostdin", "-rtsp_transport", "tcp", "-timeout", "4000000",
             "-i", f"rtsp://{creds[n] + '@' if n in creds else ''}127.0.0.1:{port}/{n}",
             "-frames:v", "1", "-f", "null", "-"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in pending}
        pending = []
        for n, p in procs.items():
            try:
                ok = p.wait(timeout=8 * TIMEOUT_SCALE) == 0
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                ok = False
            if not ok:
                pending.append(n)


def check_span(r):
    """(begin, end) of a check in ms on the agent's clock: ts is when it began, check_ms how long
    it ran."""
    begin = datetime.strptime(r["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp() * 1000
    return begin, begin + r["metrics"]["check_ms"]


def closed_url(h, path="cam"):
    return f"rtsp://127.0.0.1:{h.closed_port()}/{path}"


# ---- hostile cameras (small socket servers in this process) ----

class Hostile:
    """A TCP server on loopback whose every connection is handled by behave(conn) in its own
    thread. stop() closes everything."""

    def __init__(self, behave):
        self.behave = behave
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.behave(c, self)
        except OSError:
            pass

    def stop(self):
        self.stopped.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def read_request(c, buf=b""):
    """One RTSP request's head; returns (head, rest) or (None, buf) on EOF."""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d:
            return None, buf
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def cseq(head):
    for line in head.split("\r\n"):
        if line.lower().startswith("cseq:"):
            return line.split(":", 1)[1].strip()
    return "0"


def hang(c, srv):
    """Accepts, reads, never answers."""
    while not srv.stopped.is_set() and c.recv(4096):
        pass


def garbage(c, srv):
    """Answers with binary noise for as long as the client reads."""
    rng = random.Random(7)
    c.recv(4096)
    noise = bytes(rng.randrange(256) for _ in range(65536))
    while not srv.stopped.is_set():
        c.sendall(noise)


def huge_sdp(c, srv):
    """A well-formed OPTIONS answer, then a DESCRIBE whose SDP claims 2 GB and keeps coming."""
    buf = b""
    while not srv.stopped.is_set():
        head, buf = read_request(c, buf)
        if head is None:
            return
        if head.startswith("DESCRIBE"):
            c.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq(head)}\r\nContent-Type: application/sdp"
                      f"\r\nContent-Length: 2000000000\r\n\r\nv=0\r\n".encode())
            line = b"a=x-junk:" + b"A" * 1000 + b"\r\n"
            while not srv.stopped.is_set():
                c.sendall(line * 64)
        else:
            c.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq(head)}\r\nPublic: OPTIONS, DESCRIBE"
                      "\r\n\r\n".encode())


def redirects(c, srv):
    """Every request is answered with a redirect to a new path on the same server."""
    buf, n = b"", 0
    while not srv.stopped.is_set():
        head, buf = read_request(c, buf)
        if head is None:
            return
        n += 1
        c.sendall(f"RTSP/1.0 302 Moved Temporarily\r\nCSeq: {cseq(head)}\r\nLocation: "
                  f"rtsp://127.0.0.1:{srv.port}/loop{n}\r\n\r\n".encode())


def reset_proxy(upstream_port, after_bytes):
    """Relays to a real camera, then resets the client's connection (RST) once the camera has
    sent after_bytes: a camera that dies mid-stream."""

    def behave(c, srv):
        u = socket.create_connection(("127.0.0.1", upstream_port), timeout=10)
        sent = 0
        poll = select.poll()
        poll.register(c, select.POLLIN)
        poll.register(u, select.POLLIN)
        try:
            while not srv.stopped.is_set():
                r = {fd for fd, _ in poll.poll(500)}
                if c.fileno() in r:
                    d = c.recv(65536)
                    if not d:
                        return
                    u.sendall(d)
                if u.fileno() in r:
                    d = u.recv(65536)
                    if not d:
                        return
                    c.sendall(d)
                    sent += len(d)
                    if sent >= after_bytes:
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        c.close()
                        return
        finally:
            u.close()
    return behave


# ---- the tests ----

def faults(r):
    return sorted(r["faults"])


class PictureFaults(IntegrationTest):
    """One camera per fault: exactly the expected codes, and the site's coverage and
    assessment computed from them."""

    # camera → (faults, status)
    EXPECTED = {
        "ok": ([], "ok"),
        "black": (["black"], "down"),
        "frozen": (["frozen"], "down"),
        "blurred": (["blurred"], "degraded"),
        "dark": (["too_dark"], "degraded"),
        "bright": (["too_bright"], "degraded"),
        "lowres": (["low_resolution"], "degraded"),
        "lowfps": (["low_fps"], "degraded"),
        "h265": ([], "ok"),
        "auth": (["auth_failed"], "down"),
        "auth_cred": ([], "ok"),
        "auth_wrong": (["auth_failed"], "down"),
        "hang": (["timeout"], "down"),
        "closed": (["unreachable"], "down"),
    }

    def test_each_fault_stream_yields_exactly_its_codes(self):
        h = self.h
        clips = Clips.get()
        names = ["ok", "black", "frozen", "blurred", "dark", "bright", "lowres", "lowfps", "h265"]
        _, port = h.start_camd(config=camd_config(clips, names, auth=["ok"]))
        warm_mounts(port, names)
        # auth_cred reads the auth_ok mount with the right credentials: warmed like the rest.
        warm_mounts(port, ["auth_ok"], creds={"auth_ok": "viewer:secret"})
        hanging = Hostile(hang)
        self.addCleanup(hanging.stop)
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        cams = [(n, f"rtsp://127.0.0.1:{port}/{n}", "hall") for n in names]
        good = h.write("cam.cred", "viewer:secret\n")  # camd's AUTH_USER / AUTH_PASSWORD
        wrong = h.write("wrong.cred", "viewer:not-the-secret\n")
        cams += [("auth", f"rtsp://127.0.0.1:{port}/auth_ok", "hall"),
                 ("auth_cred", f"rtsp://127.0.0.1:{port}/auth_ok", "hall", good),
                 ("auth_wrong", f"rtsp://127.0.0.1:{port}/auth_ok", "hall", wrong),
                 ("hang", f"rtsp://127.0.0.1:{hanging.port}/cam", "hall"),
                 ("closed", closed_url(h), "hall"),
                 # a room of two healthy cameras: covered
                 ("front", f"rtsp://127.0.0.1:{port}/ok", "lab"),
                 ("back", f"rtsp://127.0.0.1:{port}/h265", "lab")]
        conf = agent_ini(h, "faults", cams, {"hall": 2, "lab": 2}, srv.url, pki)
        res, _ = run_once(h, conf, timeout=90)
        runs_output = h.last_run.stdout() + h.last_run.stderr()

        streams = dict(res.get("stream", {}))
        first = dict(streams)  # the run whose coverage and assessment are checked below
        self.assertEqual(set(streams), {c[0] for c in cams})
        # camd (GStreamer) now and then serves one client of a mount badly — no packets after
        # DESCRIBE, or a burst of late timestamps that reads as low fps (seen in CI, a
        # different camera each time). A camera whose verdict differs gets one more check in
        # a second run; a real fault in the agent differs both times.
        wrong = [cam for cam, (want, status) in self.EXPECTED.items()
                 if faults(streams[cam]) != sorted(want) or streams[cam]["status"] != status]
        if wrong:
            print(f"note: second check for {wrong}: {[streams[c] for c in wrong]}",
                  file=sys.stderr)
            # From a fresh camd: one instance's looped H.265 file was seen to jump its
            # timestamps at the loop the same way for every client (fps 17.43 twice), so a
            # second look at the same instance proves nothing about the agent.
            _, port2 = h.start_camd(config=camd_config(clips, names, auth=["ok"]))
            warm_mounts(port2, names)
            warm_mounts(port2, ["auth_ok"], creds={"auth_ok": "viewer:secret"})
            cams2 = [tuple(v.replace(f":{port}/", f":{port2}/") if isinstance(v, str) else v
                           for v in c) for c in cams]
            conf = agent_ini(h, "faults", cams2, {"hall": 2, "lab": 2}, srv.url, pki)
            again, _ = run_once(h, conf, timeout=90, name="once-2")
            runs_output += h.last_run.stdout() + h.last_run.stderr()
            for cam in wrong:
                streams[cam] = again.get("stream", {}).get(cam, streams[cam])
        for cam, (want, status) in self.EXPECTED.items():
            with self.subTest(camera=cam):
                r = streams[cam]
                self.assertEqual(faults(r), sorted(want), r)
                self.assertEqual(r["status"], status, r)
                # Every check ends within its own deadline.
                self.assertLessEqual(r["metrics"]["check_ms"], WITHIN_DEADLINE_MS, r)
        m = streams["ok"]["metrics"]
        self.assertEqual((m["width"], m["height"]), (1280, 720))
        self.assertGreaterEqual(m["fps"], 20)
        self.assertGreaterEqual(m["frames_analysed"], 2)
        for k in ("bitrate_kbps", "luma_mean", "luma_stddev", "blur", "first_keyframe_ms"):
            self.assertIn(k, m)
        self.assertEqual(streams["h265"]["codec"], "hevc")
        self.assertEqual(streams["ok"]["codec"], "h264")
        # frozen while packets keep flowing: the CBR stream's bitrate is a normal one.
        self.assertGreater(streams["frozen"]["metrics"]["bitrate_kbps"], 1000, streams["frozen"])
        self.assertLess(streams["lowfps"]["metrics"]["fps"], 8)
        self.assertEqual(streams["lowres"]["metrics"]["width"], 640)
        # The secret stays in its file: not in results, not in logs.
        self.assertNotIn("secret", runs_output)
        hang_ms = streams["hang"]["metrics"]["check_ms"]
        self.assertGreaterEqual(hang_ms, CHECK_TIMEOUT_S * 1000 - 100, "timeout before deadline")

        # Coverage: lab has its two healthy cameras; hall has two ok of twelve, needs two.
        cov = res["coverage"]
        self.assertEqual(faults(cov["lab"]), [])
        self.assertEqual(cov["lab"]["status"], "ok")
        # Counted from the same run as the coverage (a camera checked again from a fresh camd
        # may have a different verdict there).
        ok_in_hall = sum(1 for c in cams if c[2] == "hall" and first[c[0]]["status"] == "ok")
        self.assertEqual(cov["hall"]["metrics"]["cameras_ok"], ok_in_hall)
        self.assertEqual(faults(cov["hall"]), [] if ok_in_hall >= 2 else ["room_uncovered"])

        # The assessment follows from the rows above.
        a = res["assessment"][SITE]["metrics"]
        n_ok = sum(1 for r in first.values() if r["status"] == "ok")
        self.assertAlmostEqual(a["picture_clear_fraction"], n_ok / len(first), delta=0.0006)
        self.assertEqual(a["picture_clear"], 0)
        self.assertEqual(a["floor_covered_fraction"], 0.5 if ok_in_hall < 2 else 1)
        self.assertEqual(a["connected"], 1, res.get("network"))  # the collector answered
        net = res.get("network", {})
        self.assertEqual(a["network_smooth"],
                         int(bool(net) and all(r["status"] == "ok" for r in net.values())))
        self.assertEqual(a["records_kept"], 0)  # no recordings configured: unproven
        self.assertIn("picture_not_clear", res["assessment"][SITE]["faults"])


class Isolation(IntegrationTest):
    """Hostile cameras end within their deadline and never delay a healthy one."""

    def test_hostile_cameras_do_not_delay_a_healthy_one(self):
        h = self.h
        clips = Clips.get()
        _, port = h.start_camd(config=camd_config(clips, ["ok"]))
        servers = {"hang": Hostile(hang), "garbage": Hostile(garbage),
                   "hugesdp": Hostile(huge_sdp), "redirect": Hostile(redirects),
                   # Reset after ~0.5 s of the 1500 kbit/s picture: a check needs two
                   # keyframes a second apart (> 187 kB), so it cannot end, ok, before
                   # the reset, however the machine's load spaces the bytes (at 200 kB it
                   # sometimes did, once the window became 1 s).
                   "reset": Hostile(reset_proxy(port, 100_000))}
        for s in servers.values():
            self.addCleanup(s.stop)
        cams = [(n, f"rtsp://127.0.0.1:{s.port}/ok", "hall") for n, s in servers.items()]
        # The healthy camera is queued last: it must still start at once, on its own worker.
        cams.append(("healthy", f"rtsp://127.0.0.1:{port}/ok", "hall"))
        # A hostile camera holds one worker for at most its deadline: with more workers than
        # hostile cameras, none waits for a worker.
        conf = agent_ini(h, "hostile", cams, {"hall": 1}, closed_url(h).replace("rtsp", "https"))
        conf.write_text(conf.read_text().replace("[agent]\n", "[agent]\nworkers = 8\n"))
        res, _ = run_once(h, conf, timeout=60)
        streams = res["stream"]
        self.assertEqual(set(streams), {c[0] for c in cams})
        healthy = streams["healthy"]
        self.assertEqual(healthy["faults"], [], healthy)
        # "Not delayed" as facts about the agent's own clock, not about this machine's speed
        # (ts = when a check began, check_ms = how long it ran): the cameras that hold a worker
        # until the deadline are still held when the healthy check begins, and when it ends.
        # A healthy check queued behind a hostile one (too few workers, a shared lock) begins
        # only after that one's deadline, however fast or slow the machine is.
        held = {n: check_span(streams[n]) for n in ("hang", "garbage", "redirect")}
        h_begin, h_end = check_span(healthy)
        first_release = min(end for _, end in held.values())
        self.assertLess(h_begin, first_release,
                        f"the healthy check waited for a hostile one: {healthy} {held}")
        # Its own deadline is the same as theirs: had a hostile check slowed it down to its
        # deadline, it would have ended with them (and reported a timeout).
        self.assertLess(h_end, first_release, f"the healthy check ran into the deadline: {healthy}")
        # The deadline-bound checks ran side by side, on their own workers: all of them were
        # running at one moment (serial checks would each begin after the last one's end).
        self.assertLess(max(b for b, _ in held.values()), first_release, f"serial checks: {held}")
        for name in servers:
            with self.subTest(camera=name):
                r = streams[name]
                self.assertEqual(r["status"], "down", r)
                self.assertTrue(r["faults"], r)
                self.assertLessEqual(r["metrics"]["check_ms"], WITHIN_DEADLINE_MS, r)
        self.assertEqual(faults(streams["hang"]), ["timeout"])
        # Noise is read as endless header lines: no answer within the deadline.
        self.assertEqual(faults(streams["garbage"]), ["timeout"])
        # A 2 GB SDP is refused at once (it once took the agent to 2 GB of RSS), and the
        # agent's peak stays small (children's peak: the agent, and ffmpeg making clips).
        self.assertEqual(faults(streams["hugesdp"]), ["protocol_error"], streams["hugesdp"])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        self.assertLess(peak_mb, 600, "peak RSS of a child process, MB")
        # RTSP redirects are followed without a limit by libavformat: the deadline ends it.
        self.assertEqual(faults(streams["redirect"]), ["timeout"], streams["redirect"])
        # Reset after half a second of good picture: down, not "ok for what it showed".
        self.assertEqual(faults(streams["reset"]), ["protocol_error"], streams["reset"])


def seg_name(t):
    """The segment path below the camera directory for start time t (local time)."""
    return time.strftime("%Y%m%d/%H%M%S.mp4", time.localtime(t))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Recordings(IntegrationTest):
    """Segments made with ffmpeg: gap in a session, corrupt, missing, retention short."""

    SEG_S = 60

    def _segment(self):
        p = self.h.path("segment.mp4")
        if not p.exists():
            # 60 s of a small picture at 2 fps: a real MP4 with a real duration, made quickly.
            ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=2", "-t", self.SEG_S, "-c:v",
                   "libx264", "-preset", "ultrafast", "-g", 2, "-pix_fmt", "yuv420p", p)
        return p

    def _put(self, root, cam, t, truncate=False):
        dst = root / cam / seg_name(t)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._segment(), dst)
        if truncate:
            with open(dst, "r+b") as f:
                f.truncate(dst.stat().st_size * 2 // 5)
        return dst

    def test_gap_corrupt_missing_and_retention_short(self):
        h = self.h
        root = h.path("rec")
        now = int(time.time())
        base = now - 11 * 60 - 10  # segments tile [base, now - 10 s]
        slots = [base + i * self.SEG_S for i in range(11)]
        sess_start, sess_end = base + self.SEG_S, base + 9 * self.SEG_S
        for t in slots:
            self._put(root, "rec-ok", t)
            if t not in (slots[4], slots[5]):  # two minutes missing inside the session
                self._put(root, "rec-gap", t)
            self._put(root, "rec-corrupt", t, truncate=(t == slots[0]))  # before the session
            self._put(root, "rec-retention", t)
        old = self._put(root, "rec-retention", now - 2 * 86400)  # recorded for two days
        cams = [(c, closed_url(h), "hall")
                for c in ("rec-ok", "rec-gap", "rec-corrupt", "rec-missing", "rec-retention")]
        cams.append(("rec-none", closed_url(h), "office"))  # a room with no exam session
        extra = (f"[recordings]\nroot = {root}\npattern = {{camera}}/%Y%m%d/%H%M%S.mp4\n"
                 "retention_days = 1\ngap_tolerance = 5s\nmissing_after = 2m\nsettle = 0s\n\n"
                 f"[session exam-1]\nstart = {iso(sess_start)}\nend = {iso(sess_end)}\n"
                 "rooms = hall\n")
        conf = agent_ini(h, "rec", cams, {"hall": 1, "office": 1}, "https://127.0.0.1:1",
                         extra=extra)
        res, _ = run_once(h, conf, timeout=90)
        rec = res["recording"]
        self.assertEqual(faults(rec["rec-ok"]), [], rec["rec-ok"])
        self.assertEqual(rec["rec-ok"]["status"], "ok")
        self.assertEqual(rec["rec-ok"]["metrics"]["segments"], len(slots))
        self.assertEqual(faults(rec["rec-gap"]), ["recording_gap"], rec["rec-gap"])
        self.assertEqual(rec["rec-gap"]["session"], "exam-1")
        self.assertEqual(rec["rec-gap"]["metrics"]["gap_count"], 1)
        self.assertEqual(rec["rec-gap"]["metrics"]["gap_seconds"], 2 * self.SEG_S)
        self.assertEqual(faults(rec["rec-corrupt"]), ["recording_corrupt"], rec["rec-corrupt"])
        self.assertEqual(rec["rec-corrupt"]["metrics"]["corrupt_count"], 1)
        self.assertEqual(faults(rec["rec-none"]), ["recording_missing"], rec["rec-none"])
        self.assertEqual(rec["rec-none"]["status"], "down")
        # Nothing recorded while its room held an exam: missing, and the session one gap.
        self.assertEqual(faults(rec["rec-missing"]), ["recording_gap", "recording_missing"],
                         rec["rec-missing"])
        self.assertEqual(rec["rec-missing"]["metrics"]["gap_seconds"], sess_end - sess_start)
        self.assertEqual(faults(rec["rec-retention"]), [], rec["rec-retention"])
        self.assertIn("disk", rec)
        a = res["assessment"][SITE]["metrics"]
        self.assertEqual(a["records_kept"], 0)
        self.assertAlmostEqual(a["records_kept_fraction"], 2 / 6, delta=0.0006)  # ok, retention

        # The recorder prunes the two-day-old segment: what is kept is now younger than the
        # one-day policy, though this venue has recorded for longer.
        old.unlink()
        res, _ = run_once(h, conf, timeout=90, name="once-2")
        rec = res["recording"]
        self.assertEqual(faults(rec["rec-retention"]), ["retention_short"], rec["rec-retention"])
        self.assertEqual(faults(rec["rec-ok"]), [], rec["rec-ok"])  # recorded for minutes only


    def test_flat_pattern_is_a_config_error(self):
        """The scan walks a directory per camera: a pattern without one is refused with
        file:line, not run with every camera silently missing."""
        h = self.h
        extra = "[recordings]\nroot = /tmp\npattern = {camera}_%Y%m%d%H%M%S.mp4\n"
        conf = agent_ini(h, "flat", [("c1", closed_url(h), "hall")], {"hall": 1},
                         "https://127.0.0.1:1", extra=extra)
        p = h.run("check", [AGENT, "-c", conf, "--check-config"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr(), r"flat\.ini:\d+: .*pattern: \{camera\} must be a directory")


class CameraMoved(IntegrationTest):
    """A reference snapshot per camera; a different view is camera_moved, the same is not."""

    def test_reference_then_different_view_is_camera_moved(self):
        h = self.h
        clips = Clips.get()
        _, port = h.start_camd(config=camd_config(clips, ["view_a", "view_b"]))
        warm_mounts(port, ["view_a", "view_b"])

        def conf_for(view):
            cams = [("door", f"rtsp://127.0.0.1:{port}/{view}", "hall")]
            return agent_ini(h, f"moved-{view}", cams, {"hall": 1}, "https://127.0.0.1:1",
                             extra="").read_text()

        conf = h.path("moved.ini")
        conf.write_text(conf_for("view_a").replace("moved-view_a-state", "moved-state"))
        ref = h.run("reference", [AGENT, "-c", conf, "reference", "door"], timeout=30)
        self.assertIn("door", ref.stdout() + ref.stderr())
        res, _ = run_once(h, conf, timeout=40, name="same-view")
        same = res["stream"]["door"]
        self.assertEqual(faults(same), [], same)
        self.assertGreater(same["metrics"]["view_similarity"], 0.7, same)

        conf.write_text(conf_for("view_b").replace("moved-view_b-state", "moved-state"))
        res, _ = run_once(h, conf, timeout=40, name="other-view")
        moved = res["stream"]["door"]
        self.assertEqual(faults(moved), ["camera_moved"], moved)
        self.assertEqual(moved["status"], "degraded")
        self.assertLess(moved["metrics"]["view_similarity"], 0.5, moved)

        # A camera without a reference has nothing to compare: no fault, no metric.
        cams = [("window", f"rtsp://127.0.0.1:{port}/view_b", "hall")]
        other = agent_ini(h, "noref", cams, {"hall": 1}, "https://127.0.0.1:1")
        res, _ = run_once(h, other, timeout=40, name="no-reference")
        self.assertEqual(faults(res["stream"]["window"]), [])
        self.assertNotIn("view_similarity", res["stream"]["window"]["metrics"])


if __name__ == "__main__":
    try:
        main()
    finally:
        if Clips.dir:
            shutil.rmtree(Clips.dir, ignore_errors=True)
