"""Recordings kept on an NVR, proven by playback (issue 15.2).

A real RTSP playback server (tests/tools/playbackd.py, gst-rtsp-server) serves short MP4s made
with ffmpeg here, indexed by time, and answers 404 for a time nothing covers (a hole) or older
than a camera's retention. `venuewatch-agent --once` samples each camera through its
playback_url template: the healthy camera has no fault, the hole inside the exam session is a
recording_gap, the short retention a retention_short, and the reads the server counted are
exactly the planned samples — and no more than playback_max_reads when that is lower. A session
recorded as a file that plays but holds no keyframe is recording_corrupt, and a low
playback_max_kbps spreads the reads so that, by the server's own DESCRIBE times, the bytes
already read never run ahead of the limit.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import AGENT, REPO, SYSTEM_PYTHON, TIMEOUT_SCALE, IntegrationTest, main  # noqa: E402

PLAYBACKD = str(REPO / "tests" / "tools" / "playbackd.py")
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
HOUR = 3600
DAY = 86400
SAMPLES = 3  # playback_samples: points per session


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Playback(IntegrationTest):
    def setUp(self):
        super().setUp()
        h = self.h
        clip = h.path("clip.mp4")
        # 4 s of a small picture, a keyframe a second: each recording stands for its span.
        subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                        "testsrc2=s=160x120:r=5", "-t", "4", "-c:v", "libx264", "-preset",
                        "ultrafast", "-g", "5", "-bf", "0", "-pix_fmt", "yuv420p", str(clip)],
                       check=True, timeout=120 * TIMEOUT_SCALE)
        self.clip = clip
        # The same picture with one keyframe only, then that keyframe's slices (NAL type 5,
        # IDR) cut out by FFmpeg's filter_units: the MP4 still demuxes and gst-rtsp-server
        # still answers DESCRIBE/PLAY and streams it (SPS/PPS ride in the SDP), but no frame in
        # it is a keyframe, so the agent's decoder (skip_frame = non-key) never yields a
        # picture — a recording that is there and does not decode.
        whole_gop = h.path("onekey.mp4")
        nokey = h.path("nokey.mp4")
        subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                        "testsrc2=s=160x120:r=5", "-t", "4", "-c:v", "libx264", "-preset",
                        "ultrafast", "-g", "1000", "-sc_threshold", "0", "-bf", "0",
                        "-pix_fmt", "yuv420p", str(whole_gop)],
                       check=True, timeout=120 * TIMEOUT_SCALE)
        subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", "-i", str(whole_gop), "-c",
                        "copy", "-bsf:v", "filter_units=remove_types=5", str(nokey)],
                       check=True, timeout=120 * TIMEOUT_SCALE)
        now = int(time.time())
        self.now = now
        # The exam session: three hours ago to one hour ago; samples at -2h40, -2h, -1h20.
        self.sess = (now - 3 * HOUR, now - HOUR)
        whole = [{"start": iso(now - 2 * DAY), "end": iso(now + HOUR), "file": str(clip)}]
        holed = [{"start": iso(now - 2 * DAY), "end": iso(now - 2 * HOUR - 600), "file": str(clip)},
                 {"start": iso(now - 2 * HOUR + 600), "end": iso(now + HOUR), "file": str(clip)}]
        index = {"cameras": {
            "pb-ok": {"keep_s": 2 * DAY, "recordings": whole},
            "pb-gap": {"keep_s": 2 * DAY, "recordings": holed},
            # Keeps half a day where the policy asks for one.
            "pb-short": {"keep_s": DAY // 2, "recordings": whole},
            # Sound before and after; the exam session itself was recorded without a keyframe.
            "pb-bad": {"keep_s": 2 * DAY, "recordings": [
                {"start": iso(now - 2 * DAY), "end": iso(self.sess[0]), "file": str(clip)},
                {"start": iso(self.sess[0]), "end": iso(self.sess[1]), "file": str(nokey)},
                {"start": iso(self.sess[1]), "end": iso(now + HOUR), "file": str(clip)}]},
        }}
        self.log = h.path("requests.jsonl")
        p = h.start("playbackd", [SYSTEM_PYTHON, PLAYBACKD, "--port", "0", "--index",
                                  str(h.write("index.json", json.dumps(index))),
                                  "--log", str(self.log)])
        self.port = int(p.wait_for_output(r"^READY port=(\d+)$", 20 * TIMEOUT_SCALE,
                                          stream="stdout", what="playbackd READY").group(1))

    def conf(self, name, extra="", cams=("pb-ok", "pb-gap", "pb-short")):
        h = self.h
        lines = ["[agent]", "site = site-1", "org = org-1",
                 f"state_dir = {h.path(name + '-state')}", "check_timeout = 5s", "",
                 "[collector]", f"url = https://127.0.0.1:{h.closed_port()}",
                 f"ca = {h.path('none.crt')}", f"cert = {h.path('none.crt')}",
                 f"key = {h.path('none.key')}", "",
                 "[recordings]", "retention_days = 1",
                 f"playback_url = rtsp://127.0.0.1:{self.port}/playback/{{camera}}"
                 "?starttime=%Y%m%dT%H%M%SZ",
                 f"playback_samples = {SAMPLES}", "playback_read = 1s", extra, "",
                 "[room hall]", "min_cameras = 1", "",
                 "[session exam-1]", f"start = {iso(self.sess[0])}", f"end = {iso(self.sess[1])}",
                 "rooms = hall", ""]
        for cam in cams:
            # The live stream is not what is checked here: a closed port is enough.
            lines += [f"[camera {cam}]", "room = hall",
                      f"url = rtsp://127.0.0.1:{h.closed_port()}/live", ""]
        return h.write(name + ".ini", "\n".join(lines))

    def run_once(self, conf):
        p = self.h.run("once", [AGENT, "-c", str(conf), "--once"], timeout=120 * TIMEOUT_SCALE)
        rec = {}
        for line in p.stdout().splitlines():
            r = json.loads(line)
            if r["kind"] == "recording":
                rec[r["target"]] = r
        return rec

    def requests(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def test_hole_and_short_retention_are_found_and_healthy_camera_is_ok(self):
        rec = self.run_once(self.conf("a"))
        self.assertEqual(sorted(rec), ["pb-gap", "pb-ok", "pb-short"], rec)
        self.assertEqual(rec["pb-ok"]["faults"], [], rec["pb-ok"])
        self.assertEqual(rec["pb-ok"]["status"], "ok")
        self.assertEqual(rec["pb-gap"]["faults"], ["recording_gap"], rec["pb-gap"])
        self.assertEqual(rec["pb-gap"]["session"], "exam-1")
        self.assertEqual(rec["pb-gap"]["metrics"]["gap_count"], 1)
        self.assertEqual(rec["pb-short"]["faults"], ["retention_short"], rec["pb-short"])
        # Bounded: the newest, the retention point and the session's points, per camera.
        reqs = self.requests()
        for cam in rec:
            mine = [r for r in reqs if r["camera"] == cam]
            self.assertEqual(len(mine), 2 + SAMPLES, mine)
            self.assertEqual(rec[cam]["metrics"]["samples"], 2 + SAMPLES)
        self.assertEqual([r["status"] for r in reqs if r["camera"] == "pb-gap"].count(404), 1)

    def test_reads_per_round_never_exceed_playback_max_reads(self):
        rec = self.run_once(self.conf("b", "playback_max_reads = 4"))
        reqs = self.requests()
        self.assertEqual(len(reqs), 4, reqs)
        self.assertEqual(sum(r["metrics"]["samples"] for r in rec.values()), 4, rec)

    def test_session_recorded_without_a_keyframe_is_recording_corrupt(self):
        rec = self.run_once(self.conf("c", cams=("pb-ok", "pb-bad")))
        self.assertEqual(sorted(rec), ["pb-bad", "pb-ok"], rec)
        self.assertEqual(rec["pb-ok"]["faults"], [], rec["pb-ok"])
        self.assertEqual(rec["pb-ok"]["metrics"]["corrupt_count"], 0, rec["pb-ok"])
        self.assertEqual(rec["pb-bad"]["faults"], ["recording_corrupt"], rec["pb-bad"])
        self.assertEqual(rec["pb-bad"]["status"], "degraded", rec["pb-bad"])
        # Each of the session's points played (200) and none decoded.
        self.assertEqual(rec["pb-bad"]["metrics"]["corrupt_count"], SAMPLES, rec["pb-bad"])
        bad = [r for r in self.requests() if r["camera"] == "pb-bad"]
        self.assertEqual([r["status"] for r in bad], [200] * (2 + SAMPLES), bad)

    def first_second_bytes(self):
        """Bytes of the clip's video frames in its first second: a sample reads at least these
        (it reads on until a frame 1 s after the first, and counts that one too)."""
        out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_packets",
                              "-show_entries", "packet=pts_time,size", "-of", "json",
                              str(self.clip)], check=True, capture_output=True, text=True,
                             timeout=60 * TIMEOUT_SCALE).stdout
        return sum(int(p["size"]) for p in json.loads(out)["packets"]
                   if float(p["pts_time"]) < 1.0)

    def test_low_playback_max_kbps_spreads_reads_to_keep_the_round_under_it(self):
        per_read = self.first_second_bytes()
        # A limit at which one sample's bytes take 3 s to earn: longer than a read of 1 s of
        # media lasts, so only pauses between the reads can keep to it.
        kbps = max(8, per_read * 8 // 3000)
        rec = self.run_once(self.conf("d", f"playback_max_kbps = {kbps}", cams=("pb-ok",)))
        self.assertEqual(rec["pb-ok"]["faults"], [], rec["pb-ok"])
        reqs = self.requests()
        self.assertEqual([r["status"] for r in reqs], [200] * (2 + SAMPLES), reqs)
        t = [r["t"] for r in reqs]
        for k in range(1, len(t)):
            # Before read k the agent has read at least k * per_read bytes; at kbps (bits per
            # ms) it may start read k no sooner than that many bits / kbps after the round began,
            # and the first DESCRIBE came after the round began. The bound leaves out the frame
            # at 1 s each read also counts, which covers the first read's connect.
            least_s = k * per_read * 8 / kbps / 1000
            self.assertGreaterEqual(t[k] - t[0], least_s,
                                    f"read {k} came {t[k] - t[0]:.2f} s after the first; "
                                    f"{k * per_read} bytes at {kbps} kbit/s need {least_s:.2f} s")


if __name__ == "__main__":
    main()
