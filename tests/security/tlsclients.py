"""Interactive command-line TLS clients (openssl s_client, gnutls-cli) driven by the TLS tests.

The process's stdout and stderr are read by a thread into one buffer, so a test waits for what
the client printed (a poll with a deadline, scaled by VW_TIMEOUT_SCALE) instead of sleeping
between the lines it types.
"""

import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import wait_for  # noqa: E402


class Interactive:
    def __init__(self, argv):
        self.argv = [str(a) for a in argv]
        self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            chunk = self.p.stdout.read1(65536)
            if not chunk:
                break
            with self._lock:
                self._buf += chunk
        self._eof = True

    def output(self):
        with self._lock:
            return self._buf.decode(errors="replace")

    def send(self, data):
        """Types data; False when the client has already gone (the server ended it)."""
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            return False

    def wait_for(self, predicate, timeout, what):
        """Polls predicate(output) until it holds; fails with the output so far."""
        try:
            return wait_for(lambda: predicate(self.output()), timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- {' '.join(self.argv)}:\n{self.output()}") from None

    def wait_text(self, text, timeout, count=1):
        return self.wait_for(lambda out: out.count(text) >= count, timeout,
                             f"{count} x {text!r}")

    def wait_exit(self, timeout):
        self.wait_for(lambda _out: self.p.poll() is not None and self._eof, timeout,
                      "the client to exit")
        return self.p.returncode

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self._reader.join(5)
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass
