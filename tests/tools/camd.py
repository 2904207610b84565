#!/usr/bin/python3
"""camd: a real RTSP test camera server for venuewatch's tests and demo.

Run with Debian's /usr/bin/python3 (it has PyGObject); needs gir1.2-gst-rtsp-server-1.0 and the
GStreamer plugins (base, good, bad, ugly).

    /usr/bin/python3 tests/tools/camd.py --port 0 [--mount SPEC ...] [--config FILE.json]
                                         [--auth USER:PASSWORD] [--control FILE.json]

Listens on 127.0.0.1 only. Once it accepts connections it prints exactly one line
`READY port=N` on stdout, then serves until SIGTERM or SIGINT.

A mount SPEC is `BEHAVIOUR` (served at /BEHAVIOUR) or `BEHAVIOUR:PATH` (served at /PATH), so
`--mount ok:cam1 --mount ok:cam2` gives two cameras. Without --mount every behaviour in
BEHAVIOURS is mounted at its own name.

Cost: each behaviour is encoded once, by one Encoder, however many mounts and clients use it; every
client gets its own light RTP pipeline (appsrc ! payloader) fed with the encoded frames. So 64 `ok`
cameras cost one encoder (~15% of a core at 720p25) plus a little per client. An encoder starts
with its behaviour's first client and stops ENCODER_LINGER_S after its last one leaves.

Why not gst-rtsp-server's shared media: in 1.22 a client's PLAY that lands on a shared media while
another client's session starts or ends can abort the whole server (g_assert in
gst_rtsp_media_get_rates); agents that check cameras every few seconds, several at once, hit that
about once in a dozen rounds of 8 concurrent clients. Per-client media have no shared state to race
on.

--config FILE.json adds or overrides behaviours, and may list mounts:
    {"behaviours": {"slow": {"video": "videotestsrc is-live=true pattern=ball", "fps": 5}},
     "mounts": ["ok", "slow:cam9"]}
A behaviour's keys are the fields of Behaviour below.

--control FILE.json switches mounts at run time, as a camera that goes black or off does: on
SIGUSR1 camd reads {"PATH": "BEHAVIOUR" | null, ...} and serves PATH with that behaviour from the
next client on (null: unmounted, so DESCRIBE gets 404), then prints `SWITCHED count=K n=N` on
stdout (K counts the switches, so a caller can wait for its own).
Clients already playing keep what they had, as a reconnecting checker sees the change.
"""

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, fields

import gstwrap
from gstwrap import GLib, Gst, GstRtsp, GstRtspServer

# Credentials of behaviours with auth=True (RTSP basic auth).
AUTH_USER = "viewer"
AUTH_PASSWORD = "secret"

# x264/x265 for test streams: cheapest preset, no B-frames or lookahead (zerolatency), one thread
# (least total CPU when many encoders share two cores), and a keyframe every second so a client
# that joins a running encoder starts decoding within a second.
X264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} threads=1"
X265 = ("x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps}"
        " option-string=repeat-headers=1:pools=1:frame-threads=1")

# An encoder keeps running this long after its last client, so agents checking every few seconds
# do not restart it for every check.
ENCODER_LINGER_S = 30

# Threads serving RTSP clients (each blocks in DESCRIBE until its first keyframe).
MAX_CLIENT_THREADS = 256

# codec → (parser that repeats parameter sets before each keyframe, encoded caps, RTP payloader).
CODECS = {
    "h264": ("h264parse config-interval=-1", "video/x-h264,stream-format=byte-stream,alignment=au",
             "rtph264pay pt=96"),
    "h265": ("h265parse config-interval=-1", "video/x-h265,stream-format=byte-stream,alignment=au",
             "rtph265pay pt=96"),
    "alaw": ("", "audio/x-alaw,rate=8000,channels=1", "rtppcmapay pt=8"),
}


@dataclass
class Behaviour:
    """One kind of camera. One of video / audio_only / encoded says where the media comes from."""

    # A live raw-video source fragment (see live()), then optional filters.
    video: str = ""
    filters: str = ""  # e.g. "videobalance contrast=0.2", applied after scaling to width x height
    width: int = 1280
    height: int = 720
    fps: int = 25
    codec: str = "h264"  # h264 | h265 (alaw for audio_only)
    kbps: int = 1500
    # An audio-only stream (no video at all): G.711 A-law at 8 kHz, common on real cameras.
    audio_only: bool = False
    # A GStreamer fragment that already produces `codec` (live, timestamped), used as is: e.g. a
    # pre-encoded stream served without re-encoding. Parsed and payloaded like the others.
    encoded: str = ""
    # A file of pre-encoded `codec` (Annex B byte stream, e.g. made once with the ffmpeg CLI:
    # `-c:v libx264 -g 25 -bf 0 -f h264`), looped and paced at `fps`: any number of cameras
    # for the price of reading a file, so benchmarks measure the client, not the server.
    # No B-frames: the parser stamps decode times only, and they are the presentation times.
    file: str = ""
    auth: bool = False  # requires AUTH_USER / AUTH_PASSWORD
    help: str = ""

    def encoder_line(self):
        """The encoder pipeline: source → encoded frames → appsink 'out'."""
        codec = "alaw" if self.audio_only else self.codec
        parse, caps, _ = CODECS[codec]
        if self.encoded:
            chain = [self.encoded]
        elif self.file:
            chain = [f"multifilesrc location={self.file} loop=true "
                     f"caps={caps.split(',')[0]},stream-format=byte-stream,framerate={self.fps}/1",
                     parse.split()[0], "clocksync"]
        elif self.audio_only:
            chain = ["audiotestsrc is-live=true wave=sine", "audio/x-raw,rate=8000,channels=1",
                     "alawenc"]
        else:
            gop = max(1, self.fps)  # one keyframe per second
            enc = (X265 if codec == "h265" else X264).format(gop=gop, kbps=self.kbps)
            chain = [self.video,
                     f"video/x-raw,width={self.width},height={self.height},framerate={self.fps}/1"]
            if self.filters:
                chain += [self.filters, "videoconvert"]
            chain += [enc]
        if parse:
            chain += [parse]
        # A slow consumer drops frames here rather than stalling the source.
        chain += [caps, "appsink name=out emit-signals=true sync=false max-buffers=8 drop=true"]
        return " ! ".join(chain)

    def client_line(self):
        """One client's RTP pipeline, fed by the encoder through appsrc 'src'. A client that
        cannot keep up loses its oldest frames (leaky), never the others'."""
        _, _, pay = CODECS["alaw" if self.audio_only else self.codec]
        return ("( appsrc name=src is-live=true format=time max-buffers=50 "
                f"leaky-type=downstream ! {pay} name=pay0 )")


def live(pattern, motion=0):
    """A live test source; motion scrolls the picture by that many pixels per frame."""
    return f"videotestsrc is-live=true pattern={pattern} horizontal-speed={motion}"


# A still picture that is a real one (colour bars), repeated: imagefreeze re-sends one frame.
STILL = "videotestsrc pattern=smpte75 num-buffers=1 ! video/x-raw,width=1280,height=720 " \
        "! imagefreeze is-live=true"

# The camera behaviours. The first four are what the integration tests rely on today; the rest
# are the fault streams the picture checks will be tested against. Healthy pictures are colour
# bars that scroll: bright, sharp edges and motion, as a picture check wants to see.
BEHAVIOURS = {
    "ok": Behaviour(video=live("smpte", 2), help="healthy 1280x720 25 fps H.264"),
    "ok2": Behaviour(video=live("smpte75", -3), help="another healthy 1280x720 25 fps H.264"),
    "auth": Behaviour(video=live("smpte", 2), auth=True,
                      help=f"healthy, requires basic auth {AUTH_USER}/{AUTH_PASSWORD}"),
    "audio": Behaviour(audio_only=True, help="audio only, no video stream"),
    # Fault streams (picture quality).
    "black": Behaviour(video=live("black"), help="black picture"),
    "frozen": Behaviour(video=STILL, help="the same picture every frame"),
    "blurred": Behaviour(video=live("smpte", 2), filters="gaussianblur sigma=8",
                         help="moving but heavily blurred"),
    # Low contrast keeps the bars (a picture, not black) while moving mean luma to ~31 / ~240.
    # (contrast 0.2 gave ~24 with 98% of pixels near blackdetect's 10% line: too close to
    # black to test too_dark; any brightness offset below 0 made it black outright.)
    "dark": Behaviour(video=live("smpte", 2), filters="videobalance contrast=0.25 saturation=0.3",
                      help="far too dark (mean luma ~31, not black)"),
    "bright": Behaviour(video=live("smpte", 2),
                        filters="videobalance contrast=0.2 brightness=0.75 saturation=0.3",
                        help="far too bright (mean luma ~240)"),
    "lowres": Behaviour(video=live("smpte", 2), width=640, height=360, kbps=500,
                        help="640x360, below 720p"),
    "lowfps": Behaviour(video=live("smpte", 2), fps=5, help="5 fps"),
    "h265": Behaviour(video=live("smpte", 2), codec="h265", help="healthy, H.265"),
}


class Encoder:
    """Encodes one behaviour and hands every encoded frame to the appsrcs of its clients.
    subscribe/unsubscribe run on gst-rtsp-server's client threads, on_sample on the encoder's
    streaming thread; _lock guards the subscriber table."""

    def __init__(self, name, behaviour):
        self.name = name
        self.pipeline = Gst.parse_launch(behaviour.encoder_line())
        self.pipeline.get_by_name("out").connect("new-sample", self._on_sample)
        self._lock = threading.Lock()  # the subscriber table
        self._state_lock = threading.Lock()  # starting and stopping the pipeline
        self._idle_since = time.monotonic()
        self._subs = {}  # appsrc → its anchor (see _on_sample), None until its first keyframe
        self._running = False
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()  # dispatched on the main loop
        bus.connect("message::error", self._on_error)

    def subscribe(self, appsrc):
        with self._state_lock:
            with self._lock:
                self._subs[appsrc] = None
                start = not self._running
                self._running = True
            failure = Gst.StateChangeReturn.FAILURE
            if start and self.pipeline.set_state(Gst.State.PLAYING) == failure:
                print(f"camd: behaviour {self.name}: encoder does not start", file=sys.stderr,
                      flush=True)

    def unsubscribe(self, appsrc):
        with self._lock:
            self._subs.pop(appsrc, None)
            if not self._subs:
                self._idle_since = time.monotonic()

    def stop_if_idle(self, linger_s):
        """Stop encoding once no client has watched for linger_s (main loop, periodically)."""
        with self._state_lock:
            with self._lock:
                if (not self._running or self._subs
                        or time.monotonic() - self._idle_since < linger_s):
                    return
                self._running = False
            # Outside _lock: the streaming thread takes it in _on_sample while NULL waits for it.
            self.pipeline.set_state(Gst.State.NULL)

    def _on_error(self, _bus, msg):
        err, debug = msg.parse_error()
        print(f"camd: behaviour {self.name}: {err.message} ({debug})", file=sys.stderr, flush=True)

    def _on_sample(self, sink):
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.OK
        buf = sample.get_buffer()
        keyframe = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        # A parsed elementary stream (file=) carries decode times only; without B-frames
        # they are the presentation times.
        ts = buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else buf.dts
        with self._lock:
            targets = []
            for src, anchor in self._subs.items():
                if anchor is None:
                    # A new client starts at a keyframe, as with a real camera. Its anchor
                    # is the clock time of that frame less the encoder's timestamp, so
                    # encoder time + anchor = the clock time a frame belongs to. Only once
                    # the appsrc is PLAYING: going to PLAYING, a pipeline hands its clock
                    # to every element first and each its base time only as that element
                    # changes state (GStreamer's design/gstpipeline.md). A frame placed in
                    # that gap on a fresh appsrc's base time of 0 lay the machine's uptime
                    # in the future: the client's sink held every packet, and a check got
                    # none in its window (a healthy camera read as no_video, now and then).
                    clock = src.get_clock()
                    if (not keyframe or clock is None or ts == Gst.CLOCK_TIME_NONE
                            or src.get_state(0)[1] != Gst.State.PLAYING):
                        continue
                    anchor = clock.get_time() - ts
                    self._subs[src] = anchor
                    src.set_caps(sample.get_caps())
                targets.append((src, anchor))
        gone = []
        for src, anchor in targets:
            # The encoder's own timestamps on the client's clock: frame spacing is the
            # source's, as a camera's RTP timestamps come from its capture clock, not from
            # the network. The base time is read at each push, not kept: a pipeline that
            # pauses and plays again (gst-rtsp-server does around PLAY) gets a new one.
            if ts == Gst.CLOCK_TIME_NONE:
                continue  # an untimed buffer cannot be placed on the client's clock
            out = buf.copy()  # shares the memory, not the bytes
            out.pts = max(0, ts + anchor - src.get_base_time())
            out.dts = Gst.CLOCK_TIME_NONE
            if src.emit("push-buffer", out) in (Gst.FlowReturn.FLUSHING, Gst.FlowReturn.EOS):
                gone.append(src)  # its client's pipeline has stopped (missed 'unprepared')
        for src in gone:
            self.unsubscribe(src)
        return Gst.FlowReturn.OK

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


class CameraFactory(GstRtspServer.RTSPMediaFactory):
    """A mount: every client gets its own media (appsrc ! payloader) fed by the shared Encoder."""

    def __init__(self, behaviour, encoder):
        super().__init__()
        self.encoder = encoder
        self.set_launch(behaviour.client_line())
        self.set_shared(False)
        self.set_suspend_mode(GstRtspServer.RTSPSuspendMode.NONE)
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory, media):
        appsrc = media.get_element().get_by_name("src")
        self.encoder.subscribe(appsrc)
        media.connect("unprepared", lambda _m: self.encoder.unsubscribe(appsrc))


def load_config(path, behaviours):
    with open(path) as f:
        doc = json.load(f)
    known = {f.name for f in fields(Behaviour)}
    for name, spec in doc.get("behaviours", {}).items():
        bad = set(spec) - known
        if bad:
            raise SystemExit(f"camd: {path}: behaviour {name}: unknown keys {sorted(bad)}")
        behaviours[name] = Behaviour(**spec)
    return list(doc.get("mounts", []))


def parse_mounts(specs, behaviours):
    """['ok', 'ok:cam1'] -> [('ok', '/ok'), ('ok', '/cam1')]"""
    out, paths = [], set()
    for spec in specs:
        name, _, path = spec.partition(":")
        path = "/" + (path or name).lstrip("/")
        if name not in behaviours:
            raise SystemExit(f"camd: unknown behaviour {name!r}; known: {', '.join(behaviours)}")
        if path in paths:
            raise SystemExit(f"camd: mount path {path} given twice")
        paths.add(path)
        out.append((name, path))
    return out


def apply_control(path, table, behaviours, encoders):
    """Mount PATH → behaviour (or unmount) per the control file; returns how many it applied.
    Main loop only (encoders and the mount table are created and changed there)."""
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected an object of PATH: BEHAVIOUR | null")
    for mount, name in doc.items():
        if name is not None and name not in behaviours:
            raise ValueError(f"{path}: {mount}: unknown behaviour {name!r}")
    for mount, name in doc.items():
        mount = "/" + mount.lstrip("/")
        table.remove_factory(mount)
        if name is None:
            continue
        b = behaviours[name]
        if name not in encoders:
            encoders[name] = Encoder(name, b)
        factory = CameraFactory(b, encoders[name])
        permit(factory, b.auth)
        table.add_factory(mount, factory)
    print("camd: switched " + " ".join(f"{m}={n or '-'}" for m, n in doc.items()),
          file=sys.stderr, flush=True)
    return len(doc)


def make_auth(user=AUTH_USER, password=AUTH_PASSWORD):
    """Basic auth: user gets role 'viewer'; a client without credentials, 'anonymous'."""
    auth = GstRtspServer.RTSPAuth()
    viewer = GstRtspServer.RTSPToken.new()
    viewer.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), viewer)
    anon = GstRtspServer.RTSPToken.new()
    anon.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
    auth.set_default_token(anon)
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    return auth


def permit(factory, needs_auth):
    """Open mounts let both roles play. Auth mounts let 'anonymous' see the mount (access) but not
    play it (construct): gst-rtsp-server answers a missing access right with 404 and a missing
    construct right with 401 plus a Basic challenge, and a client needs the 401 to retry with
    credentials, as a real camera makes it do."""
    rights = {"viewer": (True, True), "anonymous": (True, not needs_auth)}
    for role, (access, construct) in rights.items():
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            f"{role}, media.factory.access=(boolean){str(access).lower()}, "
            f"media.factory.construct=(boolean){str(construct).lower()}"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="behaviours:\n" + "\n".join(
                                     f"  {n:8} {b.help}" for n, b in BEHAVIOURS.items()))
    ap.add_argument("--port", type=int, default=0, help="TCP port; 0 = any free port")
    ap.add_argument("--mount", action="append", default=[], metavar="SPEC",
                    help="BEHAVIOUR or BEHAVIOUR:PATH (repeatable; default: every behaviour)")
    ap.add_argument("--config", help="JSON file with extra behaviours and mounts")
    ap.add_argument("--auth", metavar="USER:PASSWORD",
                    help=f"credentials of auth=True behaviours (default {AUTH_USER}:{AUTH_PASSWORD});"
                         " a test picks a unique password so it can search logs for it")
    ap.add_argument("--control", metavar="FILE.json",
                    help="on SIGUSR1, switch mounts as this file says (see above)")
    args = ap.parse_args()
    user, password = AUTH_USER, AUTH_PASSWORD
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            ap.error("--auth: expected USER:PASSWORD, both non-empty")

    Gst.init(None)
    gstwrap.bind()  # before any GStreamer thread runs Python code
    behaviours = dict(BEHAVIOURS)
    specs = list(args.mount)
    if args.config:
        specs += load_config(args.config, behaviours)
    mounts = parse_mounts(specs or list(behaviours), behaviours)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.set_auth(make_auth(user, password))
    # gst-rtsp-server serves every client from one thread by default, and a client's DESCRIBE
    # blocks that thread until its media has a first keyframe (up to a second): 32 cameras
    # checked at once would queue for half a minute. A thread per client, as many cameras have.
    server.get_thread_pool().set_max_threads(MAX_CLIENT_THREADS)
    table = server.get_mount_points()
    encoders = {}
    for name, path in mounts:
        b = behaviours[name]
        if name not in encoders:
            try:
                encoders[name] = Encoder(name, b)
            except GLib.Error as e:
                raise SystemExit(f"camd: behaviour {name}: {e.message}") from None
        factory = CameraFactory(b, encoders[name])
        permit(factory, b.auth)
        table.add_factory(path, factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"camd: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    def ready():
        # attach() has bound and listened; the loop is now running, so connections are served.
        print(f"READY port={server.get_bound_port()}", flush=True)
        print("camd: mounts " + " ".join(f"{p}={n}" for n, p in mounts), file=sys.stderr,
              flush=True)
        return GLib.SOURCE_REMOVE

    GLib.idle_add(ready)
    GLib.timeout_add_seconds(5, lambda: [e.stop_if_idle(ENCODER_LINGER_S)
                                         for e in encoders.values()] and GLib.SOURCE_CONTINUE)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda *_: (loop.quit(), False)[1])

    switches = [0]

    def on_control(*_):
        # A bad file is reported and changes nothing: the caller waits for SWITCHED.
        try:
            n = apply_control(args.control, table, behaviours, encoders)
            switches[0] += 1
            print(f"SWITCHED count={switches[0]} n={n}", flush=True)
        except (OSError, ValueError, GLib.Error) as e:
            print(f"camd: --control: {e}", file=sys.stderr, flush=True)
        return GLib.SOURCE_CONTINUE

    if args.control:
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR1, on_control)
    loop.run()
    for enc in encoders.values():
        enc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
