"""Camera credentials never reach a log, a result or the outbox (issue 10, item 6).

A real RTSP camera (camd, basic auth with a password made for this run) is checked by
`venuewatch-agent --once` at log_level=debug with FFmpeg's own logging at trace
(VW_LIBAV_LOG_LEVEL=trace), which dumps every RTSP request with its Authorization header.
Credentials come both in the URL (user:password@host) and from a credentials file, and one
camera has a wrong password. The password, the wrong one and their Basic encodings must
appear nowhere in stdout, stderr or any file the agent wrote.
"""

import base64
import json
import os
import re
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, CAMD, SYSTEM_PYTHON, TIMEOUT_SCALE, IntegrationTest,  # noqa: E402
                     main, query, wait_for)

USER = "viewer"


class CredentialsStayOutOfLogs(IntegrationTest):
    def test_password_appears_nowhere_at_debug_and_ffmpeg_trace(self):
        password = "pw" + secrets.token_hex(8)
        wrong = "wr" + secrets.token_hex(8)
        camd = self.h.start("camd", [SYSTEM_PYTHON, CAMD, "--port", "0", "--mount", "auth:cam",
                                     "--auth", f"{USER}:{password}"])
        port = int(camd.wait_for_output(r"^READY port=(\d+)$", 20 * TIMEOUT_SCALE,
                                        stream="stdout", what="camd READY").group(1))
        cred = self.h.write("cam.cred", f"{USER}:{password}\n")
        os.chmod(cred, 0o600)
        state = self.h.path("state")
        conf = self.h.agent_config(
            "agent.ini", "site-1", "org-1", state, f"https://127.0.0.1:{self.h.closed_port()}",
            {"ca": self.h.path("none.crt"), "cert": self.h.path("none.crt"),
             "key": self.h.path("none.key")},
            [("cam-url", f"rtsp://{USER}:{password}@127.0.0.1:{port}/cam"),
             ("cam-file", f"rtsp://127.0.0.1:{port}/cam"),
             ("cam-wrong", f"rtsp://{USER}:{wrong}@127.0.0.1:{port}/cam")],
            check_timeout="15s")
        text = Path(conf).read_text().replace("log_level = info", "log_level = debug")
        text = text.replace("[camera cam-file]\n", f"[camera cam-file]\ncredentials = {cred}\n")
        Path(conf).write_text(text)

        agent = self.h.start("agent", [AGENT, "-c", conf, "--once"],
                             env={"VW_LIBAV_LOG_LEVEL": "trace"})
        agent.wait(120 * TIMEOUT_SCALE)
        out, err = agent.stdout(), agent.stderr()
        self.assertEqual(agent.returncode, 0, err[-4000:])

        # The checks really authenticated (and one really failed to), so the secrets were
        # on the wire while FFmpeg logged at trace.
        results = {}
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("kind") == "stream":
                    results[r["target"]] = r
        self.assertEqual(results["cam-url"]["status"], "ok", results["cam-url"])
        self.assertEqual(results["cam-file"]["status"], "ok", results["cam-file"])
        self.assertIn("auth_failed", results["cam-wrong"]["faults"], results["cam-wrong"])

        # The daemon proper, until all three cameras have a row in the outbox (the collector
        # is a closed port, so the rows stay there to be searched).
        daemon = self.h.start("agent-daemon", [AGENT, "-c", conf],
                              env={"VW_LIBAV_LOG_LEVEL": "trace"})
        outbox = Path(state) / "outbox.db"

        def three_cameras_stored():
            if not outbox.exists():
                return False
            rows = query(outbox, "SELECT target FROM latest WHERE kind = 'stream'")
            return {r[0] for r in rows} >= {"cam-url", "cam-file", "cam-wrong"}
        wait_for(three_cameras_stored, 60 * TIMEOUT_SCALE, "stream rows of the three cameras")
        daemon.stop()
        err += daemon.stderr()
        out += daemon.stdout()

        secrets_ = {password, wrong}
        for pw in (password, wrong):
            secrets_.add(base64.b64encode(f"{USER}:{pw}".encode()).decode())
        places = {"stdout": out.encode(), "stderr": err.encode()}
        for f in Path(state).rglob("*"):
            if f.is_file():
                places[str(f)] = f.read_bytes()
        self.assertGreater(len(places), 2, "the agent wrote nothing to its state dir")
        for where, data in places.items():
            for s in secrets_:
                self.assertNotIn(s.encode(), data, f"{s!r} found in {where}")
        # And no userinfo of any kind in a log line.
        self.assertIsNone(re.search(rf"{USER}:[^@\s]*@", err), "userinfo in stderr")
        # FFmpeg's request dumps (trace level) reached the debug log, masked: the filter was
        # exercised on the very lines that carried the secret.
        self.assertTrue(re.search(r"event=libav .*Authorization: \*\*\*", err),
                        "no masked Authorization line from FFmpeg in stderr")


if __name__ == "__main__":
    main()
