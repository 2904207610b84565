#!/usr/bin/env python3
"""camd, the test camera server every picture test relies on: each client of a fresh camd gets
packets. A client's first keyframe used to be placed on its pipeline's clock with whatever base
time its appsrc had then; going to PLAYING, GStreamer hands the clock to every element before
each gets its base time, so a frame landing in that gap was stamped with the machine's uptime
ahead, the client's sink held every packet, and a healthy camera read as no_video (CI saw it a
different camera each run, on cold machines). Debug logging (GST_DEBUG=*:5, to /dev/null) slows
GStreamer's state changes enough to open that gap most rounds: before the fix 8 of 24 first
clients got nothing; a healthy camd gives every client packets. ffprobe is the client (not our
agent), so this is about camd alone."""

import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CAMD, SYSTEM_PYTHON, TIMEOUT_SCALE, IntegrationTest, main  # noqa: E402
from test_evidence import make_clip  # noqa: E402

ROUNDS = 6
CLIENTS = 2
READ_S = 2


def packets(port):
    """Video packets ffprobe reads in READ_S seconds of rtsp://127.0.0.1:port/ok (TCP)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-read_intervals", f"%+{READ_S}",
         "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv",
         f"rtsp://127.0.0.1:{port}/ok"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("packet"))


class FirstClients(IntegrationTest):
    def test_every_first_client_of_a_fresh_camd_gets_packets(self):
        h = self.h
        clip = h.path("ok.h264")
        make_clip(clip, "ok")
        conf = h.write("camd.json", json.dumps({
            "behaviours": {"f_ok": {"file": str(clip), "fps": 25, "codec": "h264"}},
            "mounts": ["f_ok:ok"]}))
        env = dict(os.environ, GST_DEBUG="*:5", GST_DEBUG_FILE="/dev/null")
        got = []
        for r in range(ROUNDS):
            p = h.start("camd", [SYSTEM_PYTHON, CAMD, "--port", "0", "--config", str(conf)],
                        env=env)
            m = p.wait_for_output(r"^READY port=(\d+)$", 60 * TIMEOUT_SCALE, stream="stdout",
                                  what="camd READY")
            port = int(m.group(1))
            counts = [0] * CLIENTS

            def client(i):
                counts[i] = packets(port)
            threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            p.stop()
            got.append(counts)
        self.assertFalse([c for c in got if 0 in c],
                         f"clients that got no packet in {READ_S} s, by round: {got}")


if __name__ == "__main__":
    main()
