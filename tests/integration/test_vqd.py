#!/usr/bin/python3
"""The vendors' video-quality faults (VQD: 雪花噪声, 偏色, 条纹, 遮挡) against real cameras.

    /usr/bin/python3 tests/integration/test_vqd.py [-k PATTERN]

- Each fault stream (made once with the ffmpeg CLI, served by camd from its file) yields exactly
  its code: noisy, color_cast, striped, occluded.
- Healthy streams that look like the faults to a careless check — a moving scene, a dim but fine
  room with sensor noise (also at the snow clip's higher bit rate), a still scene with a ticking
  on-screen clock, a colourful one (bars), a grey one, a room with people walking — yield none of
  them, over several rounds of checks.
  VW_VQD_ROUNDS sets the rounds (default 2); every check's metrics go to stderr, the record the
  thresholds in agent/agent_conf.c were chosen from.

See harness.py for the environment it needs.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import IntegrationTest, main  # noqa: E402
from test_evidence import CBR, WALKER, agent_ini, faults, ffmpeg, run_once, warm_mounts  # noqa: E402

VQD = ("noisy", "color_cast", "striped", "occluded")
FAULT_STREAMS = VQD
ROUNDS = int(os.environ.get("VW_VQD_ROUNDS", "2"))

SCENE = "testsrc2=s=1280x720:r=25"  # moving, sharp, lit
CLOCK = ("drawtext=text='%{pts\\:hms}':fontsize=64:fontcolor=white:box=1:boxcolor=black"
         ":x=900:y=40")
# The camera's bit rate for the snow clip. Snow of single pixels does not survive x264 at a
# camera's rates (measured with tests/integration's clips, keyframes at 320 wide): ffmpeg's noise
# alls=60 over the scene 0.63 on the first keyframe, 0.51 on the next at 1500 kbit/s, 0.68-0.73
# at 4000 (the clean scene 0.50); at full 1280 width 0.49 (clean 0.65). CBR starves the keyframes
# after the first. Grains 4 pixels wide survive at 4000 kbit/s (11.7-13.2; 0.65-0.86 at 1500).
SNOW_CBR = ["-b:v", "4000k", "-minrate", "4000k", "-maxrate", "4000k", "-bufsize", "2000k",
            "-x264-params", "nal-hrd=cbr"]
# name: (lavfi source, filters[, encoder args]); 1280x720, 25 fps, a keyframe a second, CBR
# (1500 kbit/s unless given) like a camera.
CLIPS = {
    # Faults.
    # Analogue interference snow: an analogue camera's picture (its luma bandwidth-limited, so
    # the grain is several pixels wide once the encoder box scales it to 720p: 4 here) under
    # noise new every frame, added to the scene (grainmerge: the grey 128 adds nothing), at a
    # 4 Mbit/s camera's rate.
    "noisy": (SCENE, "null[bg];color=c=gray:s=320x180:r=25,format=yuv420p,"
              "noise=alls=40:allf=t+u,scale=1280:720:flags=neighbor[n];"
              "[bg][n]blend=all_mode=grainmerge:shortest=1", SNOW_CBR),
    # White balance gone: a grey card comes out orange.
    # A room's colours are muted (saturation ~30 of testsrc2's ~110): the scene muted, then
    # tinted.
    "color_cast": (SCENE, "hue=s=0.3,colorchannelmixer=rr=1:gg=0.75:bb=0.45"),
    # Interference lines: bands 16 rows apart across the whole picture.
    "striped": (SCENE, "geq=lum='clip(lum(X,Y)+40*sin(2*PI*Y/16),0,255)':cb='cb(X,Y)'"
                ":cr='cr(X,Y)'"),
    # Three quarters of the view behind a dark cover (a cloth, a board), with a sensor's
    # noise on it; the rest still the scene.
    "occluded": (SCENE, "drawbox=x=0:y=0:w=960:h=720:color=0x303030:t=fill,"
                 "noise=alls=6:allf=t"),
    # Healthy pictures.
    "scene": (SCENE, ""),
    # A dim room, lit enough (mean luma ~60), with the noise a sensor adds in low light.
    "dim": (SCENE, "eq=contrast=0.7:brightness=-0.2,noise=alls=10:allf=t"),
    # The dim room from a camera at the snow clip's rate: more of its sensor noise survives,
    # and it is still not snow.
    "dim_4m": (SCENE, "eq=contrast=0.7:brightness=-0.2,noise=alls=10:allf=t", SNOW_CBR),
    # A still view with an on-screen clock ticking (cameras burn one in).
    "clock": ("smptehdbars=s=1280x720:r=25", CLOCK + WALKER),
    # Colour bars (strongly coloured, hard edges) with a box walking across.
    "colourful": ("smptehdbars=s=1280x720:r=25", "null" + WALKER),
    # The scene without colour.
    "grey": (SCENE, "hue=s=0"),
    # A room-like view: detail everywhere, people walking.
    "room": ("testsrc=s=2560x1440:r=25", "crop=1280:720:0:0" + WALKER),
}
FAULTY = {n: [n] for n in FAULT_STREAMS}
HEALTHY = ["scene", "dim", "dim_4m", "clock", "colourful", "grey", "room"]


def make_clips():
    d = Path(tempfile.mkdtemp(prefix="vw-vqd-clips-"))
    for name, (src, filters, *enc) in CLIPS.items():
        graph = f"[0:v]{filters or 'null'},scale=1280:720,format=yuv420p[v]"
        ffmpeg("-f", "lavfi", "-t", 2, "-i", src, "-filter_complex", graph, "-map", "[v]",
               "-c:v", "libx264", "-bf", "0", "-preset", "ultrafast", "-g", 25,
               *(enc[0] if enc else CBR), "-f", "h264", d / f"{name}.h264")
    return d


def camd_config(clipdir):
    return {"behaviours": {n: {"file": str(clipdir / f"{n}.h264"), "fps": 25, "codec": "h264",
                               "help": f"pre-encoded {n}"} for n in CLIPS},
            "mounts": list(CLIPS)}


METRICS = ("luma_mean", "luma_stddev", "noise", "color_cast", "saturation", "stripes",
           "occluded_pct", "blur")


def show(round_no, streams):
    for cam, r in sorted(streams.items()):
        m = r["metrics"]
        vals = " ".join(f"{k}={m.get(k)}" for k in METRICS)
        print(f"vqd round={round_no} camera={cam} faults={','.join(faults(r)) or '-'} {vals}",
              file=sys.stderr)


class VqdFaults(IntegrationTest):
    clips = None

    @classmethod
    def setUpClass(cls):
        cls.clips = make_clips()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.clips, ignore_errors=True)

    def test_fault_streams_yield_their_code_and_healthy_ones_none(self):
        h = self.h
        _, port = h.start_camd(config=camd_config(self.clips))
        warm_mounts(port, list(CLIPS))
        cams = [(n, f"rtsp://127.0.0.1:{port}/{n}", "hall") for n in CLIPS]
        conf = agent_ini(h, "vqd", cams, {"hall": 1}, "https://127.0.0.1:1")
        false_faults, checks = [], 0
        for i in range(ROUNDS):
            res, _ = run_once(h, conf, timeout=90, name=f"once-{i}")
            streams = res["stream"]
            show(i, streams)
            self.assertEqual(set(streams), set(CLIPS))
            for cam in HEALTHY:
                checks += 1
                got = [f for f in faults(streams[cam]) if f in VQD]
                if got:
                    false_faults.append((i, cam, got, streams[cam]["metrics"]))
            if i == 0:
                for cam, want in FAULTY.items():
                    with self.subTest(camera=cam):
                        self.assertEqual(faults(streams[cam]), want, streams[cam])
                        self.assertEqual(streams[cam]["status"], "degraded", streams[cam])
                for cam in HEALTHY:
                    with self.subTest(camera=cam):
                        # none of ours, nor any other: these are healthy pictures
                        self.assertEqual(faults(streams[cam]), [], streams[cam])
        print(f"vqd healthy checks={checks} false_faults={len(false_faults)}", file=sys.stderr)
        self.assertEqual(false_faults, [])


if __name__ == "__main__":
    main()
