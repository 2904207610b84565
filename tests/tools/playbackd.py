#!/usr/bin/python3
"""playbackd: a real RTSP playback server (an NVR's recordings, indexed by time) for tests.

Run with Debian's /usr/bin/python3 (it has PyGObject); needs gir1.2-gst-rtsp-server-1.0 and the
GStreamer plugins (base, good).

    /usr/bin/python3 tests/tools/playbackd.py --port 0 --index INDEX.json [--log REQUESTS.jsonl]

Listens on 127.0.0.1 only. Once it accepts connections it prints exactly one line
`READY port=N` on stdout, then serves until SIGTERM or SIGINT.

It answers the Hikvision-style playback URL the agent's `playback_url` template produces:

    rtsp://127.0.0.1:PORT/playback/CAMERA?starttime=YYYYMMDDTHHMMSSZ

and serves the recorded file whose [start, end) covers starttime. A time no file covers (a hole
in the recording) or older than the camera's `keep_s` (the recorder's retention: it has
deleted what is older) gets 404 Not Found at DESCRIBE, as an NVR answers for a time it has
nothing for.

INDEX.json (times are UTC, ISO 8601 with Z; files are any container GStreamer's decodebin
opens whose video is H.264, e.g. short low-res MP4s made with the ffmpeg CLI at test time):

    {"cameras": {"cam1": {"keep_s": 86400,
                          "recordings": [{"start": "2026-12-03T05:00:00Z",
                                          "end": "2026-12-03T06:00:00Z",
                                          "file": "/tmp/x/cam1-0500.mp4"}]}}}

A file stands for its whole [start, end) span however long it is (tests keep clips a few
seconds long and let each stand for an hour): the agent reads a few seconds per sample.

--log appends one JSON line per DESCRIBE: {"camera", "starttime", "status", "t"}: status 200 or
404, t the server's CLOCK_MONOTONIC seconds when the DESCRIBE arrived, so a test counts the
playback reads the agent made and sees how they were spread in time.
"""

import argparse
import datetime
import json
import signal
import sys
import threading
import time
import urllib.parse

import gstwrap
from gstwrap import GLib, Gst, GstRtsp, GstRtspServer

# Threads serving RTSP clients (each blocks in DESCRIBE until its media has prerolled).
MAX_CLIENT_THREADS = 64


def parse_time(text):
    """ISO 8601 UTC (2026-12-03T05:00:00Z) or the compact playback form (20261203T050000Z)."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            pass
    raise ValueError(f"not a UTC time: {text!r}")


class Index:
    """Cameras → recordings sorted by start; lookups by time, answering what an NVR would."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        self.cameras = {}
        for name, cam in doc["cameras"].items():
            recs = sorted(((parse_time(r["start"]), parse_time(r["end"]), r["file"])
                           for r in cam["recordings"]), key=lambda r: r[0])
            self.cameras[name] = {"keep_s": cam.get("keep_s"), "recordings": recs}

    def find(self, camera, t, now):
        """Index of the recording covering t, or None (unknown camera, hole, or deleted)."""
        cam = self.cameras.get(camera)
        if cam is None:
            return None
        if cam["keep_s"] is not None and t < now - cam["keep_s"]:
            return None  # older than the recorder keeps: deleted
        for i, (start, end, _) in enumerate(cam["recordings"]):
            if start <= t < end:
                return i
        return None


class CameraFactory(GstRtspServer.RTSPMediaFactory):
    """A camera's recordings: each client gets the file covering its URL's starttime, played
    from its start (a media of its own per client)."""

    def __init__(self, playback, camera):
        super().__init__()
        self.set_shared(False)
        self.playback = playback
        self.camera = camera

    def do_create_element(self, url):
        i = self.playback.find(self.camera, url.query)
        if i is None:  # deleted between DESCRIBE's answer and here
            return None
        path = self.playback.index.cameras[self.camera]["recordings"][i][2]
        # The file is demuxed and its H.264 re-packetised as is: no decoding on the server.
        return Gst.parse_launch(f"( filesrc location={path} ! qtdemux ! h264parse "
                                "config-interval=-1 ! rtph264pay name=pay0 pt=96 )")


class Playback:
    """Answers each DESCRIBE before gst-rtsp-server looks for a mount.

    gst-rtsp-server finds media by the URL's path (/playback/cam1) alone, so a time nothing
    covers is answered 404 here, in pre-describe-request, and the camera's factory picks the
    covering file from the query when it makes the media."""

    def __init__(self, index, log, mounts):
        self.index = index
        self.log = log
        for camera in index.cameras:
            mounts.add_factory(f"/playback/{camera}", CameraFactory(self, camera))

    def find(self, camera, query):
        start = urllib.parse.parse_qs(query or "").get("starttime", [""])[0]
        try:
            t = parse_time(start)
        except ValueError:
            return None
        return self.index.find(camera, t, datetime.datetime.now(datetime.timezone.utc).timestamp())

    def on_client(self, _server, client):
        client.connect("pre-describe-request", self.on_describe)

    def on_describe(self, _client, ctx):
        path = ctx.uri.abspath or ""
        camera = path[len("/playback/"):] if path.startswith("/playback/") else None
        i = self.find(camera, ctx.uri.query) if camera else None
        start = urllib.parse.parse_qs(ctx.uri.query or "").get("starttime", [""])[0]
        self.log.write({"camera": camera, "starttime": start,
                        "status": 404 if i is None else 200, "t": time.monotonic()})
        return GstRtsp.RTSPStatusCode.NOT_FOUND if i is None else GstRtsp.RTSPStatusCode.OK


class RequestLog:
    """One JSON line per DESCRIBE, flushed at once (a test reads it while we run)."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8") if path else None
        self.mu = threading.Lock()

    def write(self, entry):
        if not self.f:
            return
        with self.mu:
            self.f.write(json.dumps(entry) + "\n")
            self.f.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--index", required=True, help="recordings by camera and time (JSON)")
    ap.add_argument("--log", help="append one JSON line per DESCRIBE here")
    args = ap.parse_args()
    Gst.init(None)
    gstwrap.bind()  # before any GStreamer thread runs Python code
    try:
        index = Index(args.index)
    except (OSError, ValueError, KeyError) as e:
        print(f"playbackd: {args.index}: {e}", file=sys.stderr)
        return 2

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_thread_pool().set_max_threads(MAX_CLIENT_THREADS)
    playback = Playback(index, RequestLog(args.log), server.get_mount_points())
    server.connect("client-connected", playback.on_client)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"playbackd: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    def ready():
        print(f"READY port={server.get_bound_port()}", flush=True)
        return GLib.SOURCE_REMOVE

    GLib.idle_add(ready)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda *_: (loop.quit(), False)[1])
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
