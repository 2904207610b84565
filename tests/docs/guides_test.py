#!/usr/bin/python3
"""guides_test: runs every command of the zh-CN operators' guides, in order, in a clean Debian
root booted with systemd, with the packages installed the way the guides say.

    guides_test.py --debs DIR [--workdir DIR] [--keep] GUIDE.md [GUIDE.md ...]
    guides_test.py --list GUIDE.md ...        # print the blocks it would run, run nothing

The guides are one story: bureau.md installs the collector and writes the venue's token and CA
certificate into /root/site-001/; venue.md's steps read them there. So they run in one root,
in the order given on the command line: GUIDE:N is part N of a guide (parts are cut by
`<!-- guide: part N -->`), e.g. bureau.md:1 venue.md:1 bureau.md:2 venue.md:2 — the bureau
rotates the CA after the venue enrolled, and the venue enrolls again.

Markup:
  ```sh     a command block: run inside the root as root, cwd /root, `bash -euo pipefail`, so any
            failing command fails the test (each block is its own shell: state that a later
            block needs goes into a file, as it would for a reader who opens a new terminal).
  ```text   after a ```sh block of the same section (prose like "应看到：" may come between,
            not another block or a heading): what the reader should see. Each non-blank line
            must appear in the output, in order, with runs of blanks equal and `…` matching
            anything; lines not listed may come between. Checked loosely on purpose: a guide
            shows the stable part.
  ```ini    a file's contents shown to the reader, not run (the block that writes it is ```sh).
  <!-- guide: retry N -->  just before a ```sh block: the reader is told to wait and run it
            again; the test reruns the block (and its check) until it passes or N seconds
            (scaled by VW_TIMEOUT_SCALE) have gone.
Any other fenced block (no language, bash, shell, console, ...) fails the test, so nothing a
reader could take for a command goes unrun.

Needs root, systemd-nspawn, nsenter and Debian's mirror (apt inside the root). The root shares
the host's network: the collector listens on 8443 and the test cameras (tests/tools/camd.py,
two healthy streams) on 127.0.0.1:8554, the addresses the guides use; both must be free.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
TIMEOUT_SCALE = float(os.environ.get("VW_TIMEOUT_SCALE", "1"))
# The guides' fixed addresses (the reader's would be their own): collector and cameras.
COLLECTOR_PORT = 8443
CAMD_PORT = 8554
CAMERAS = ["ok:hall-1-front", "ok:hall-1-back", "ok:hall-2-front", "ok:hall-2-back"]
# A block's own deadline: apt-get install from the mirror is the slowest step (~30 s here).
BLOCK_TIMEOUT = 240
FENCE = re.compile(r"^```(\S*)\s*$")
RETRY = re.compile(r"^<!--\s*guide:\s*retry\s+(\d+)\s*-->\s*$")
PART = re.compile(r"^<!--\s*guide:\s*part\s+(\d+)\s*-->\s*$")


class GuideError(Exception):
    pass


class Block:
    def __init__(self, guide, line, code):
        self.guide, self.line, self.code = guide, line, code
        self.expect = None  # list of lines, or None
        self.retry = 0
        self.part = 1

    def where(self):
        return f"{os.path.relpath(self.guide, SRC)}:{self.line}"


def parse(path):
    """The guide's ```sh blocks in order, each with its expected output and retry budget."""
    blocks, lang, start, body = [], None, 0, []
    pending = None  # the sh block a ```text block here would belong to
    retry = 0  # from a retry comment, for the next sh block
    part = 1  # from the last part comment
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, text in enumerate(lines, 1):
        if lang is None:
            m = FENCE.match(text)
            if m:
                lang, start, body = m.group(1), n, []
                if lang not in ("sh", "text", "ini"):
                    raise GuideError(f"{path}:{n}: a ```{lang} block: only sh (run), text "
                                     "(expected output) and ini (shown) are allowed")
                if lang == "text" and pending is None:
                    raise GuideError(f"{path}:{n}: a ```text block must follow a ```sh "
                                     "block of its section (prose may come between)")
                continue
            r, p = RETRY.match(text), PART.match(text)
            if r:
                retry = int(r.group(1))
            elif p:
                if int(p.group(1)) != part + 1:
                    raise GuideError(f"{path}:{n}: part {p.group(1)} after part {part}")
                part, pending = part + 1, None
            elif text.startswith("#"):
                pending = None  # a new section: a text block here is no command's output
            continue
        if text.startswith("```"):
            if text.strip() != "```":
                raise GuideError(f"{path}:{n}: a fence inside the block opened at line {start}")
            if lang == "sh":
                b = Block(path, start, "\n".join(body) + "\n")
                b.retry, retry, b.part = retry, 0, part
                blocks.append(b)
                pending = b
            elif lang == "text":
                pending.expect, pending = body, None
            else:
                pending = None
            lang = None
            continue
        body.append(text)
    if lang is not None:
        raise GuideError(f"{path}:{start}: block not closed")
    if retry:
        raise GuideError(f"{path}: a retry comment with no ```sh block after it")
    return blocks


def schedule(args):
    """The blocks in run order from GUIDE[:PART] arguments; every block of every guide named
    must be scheduled exactly once, so a part left out of the order fails before anything runs."""
    parsed, order = {}, []
    for arg in args:
        path, _, part = arg.partition(":")
        if path not in parsed:
            parsed[path] = parse(path)
        sel = [b for b in parsed[path] if not part or b.part == int(part)]
        if not sel:
            raise GuideError(f"{arg}: no ```sh block there")
        order += sel
    seen = set()
    for b in order:
        if id(b) in seen:
            raise GuideError(f"{b.where()}: scheduled twice")
        seen.add(id(b))
    for path, bs in parsed.items():
        for b in bs:
            if id(b) not in seen:
                raise GuideError(f"{b.where()} (part {b.part}) is in no part of the run order")
    return order


def _norm(s):
    return " ".join(s.split())


def _line_re(want):
    """An expected line as a regex: blanks collapsed, `…` matches anything."""
    # "a … b" in the guide: a, anything (blanks around the ellipsis included), b.
    parts = [re.escape(p.strip()) for p in _norm(want).split("…")]
    return re.compile(".*".join(parts))


def check_output(expect, output):
    """None when every expected line appears in order; else what is missing."""
    got = [_norm(x) for x in output.split("\n")]
    i = 0
    for want in expect:
        if not want.strip():
            continue
        rx = _line_re(want)
        while i < len(got) and not rx.search(got[i]):
            i += 1
        if i == len(got):
            return want.strip()
        i += 1
    return None


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_for(pred, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise GuideError(f"timed out after {timeout * TIMEOUT_SCALE:g}s waiting for {what}")
        time.sleep(interval)


class Root:
    """A clean bookworm root (tests/root/mkroot.sh) booted with systemd-nspawn -b; commands
    enter it with nsenter (all of the container's namespaces and its root directory)."""

    def __init__(self, path, log):
        self.path, self.log, self.proc, self.pid = path, log, None, None
        cache = os.environ.get("VW_ROOT_CACHE") or os.path.join(SRC, "build", "root-cache")
        self.apt_cache = os.path.join(cache, "apt-archives")
        os.makedirs(os.path.join(self.apt_cache, "partial"), exist_ok=True)

    def boot(self):
        subprocess.run(["bash", os.path.join(SRC, "tests/root/mkroot.sh"), self.path],
                       check=True, stdout=subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", self.path, "-b",
             # nspawn's own seccomp allow-list answers EPERM to Landlock, where a plain
             # Debian machine has it; the server's signer fails closed on that EPERM.
             "--system-call-filter=landlock_create_ruleset landlock_add_rule "
             "landlock_restrict_self",
             # apt's downloads survive the root (the agent's FFmpeg libraries are ~100 MB from
             # the mirror): what a site's apt proxy would do, and the second run is quick.
             f"--bind={self.apt_cache}:/var/cache/apt/archives"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

        def leader():
            if self.proc.poll() is not None:
                raise GuideError(f"systemd-nspawn exited ({self.proc.returncode}); see {self.log.name}")
            kids = []
            for t in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{t}/children") as f:
                    kids += f.read().split()
            return kids[0] if kids else None

        self.pid = wait_for(leader, 30, "the container's init")
        # systemd answers on its private socket long before every unit has started (the
        # container's dbus waits for inotify, which this host may not grant): enough for
        # systemctl start/enable/status, which is all the guides need.
        wait_for(lambda: self.run("systemctl list-jobs >/dev/null", 10)[0] == 0, 60,
                 "systemd in the root to answer systemctl")

    def run(self, code, timeout):
        cmd = ["nsenter", "-t", self.pid, "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--",
               "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "DEBIAN_FRONTEND=noninteractive",
               "SYSTEMD_PAGER=", "PAGER=cat", "/bin/bash", "-euo", "pipefail", "-c",
               "cd /root\n" + code]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode("utf-8", "replace")
            return 124, out + f"\n[timed out after {timeout * TIMEOUT_SCALE:g}s]"
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM asks nspawn for an orderly shutdown of the container's systemd.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_camd(log):
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests/tools/camd.py"),
                          "--port", str(CAMD_PORT)] + sum((["--mount", m] for m in CAMERAS), []),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                         start_new_session=True, text=True)
    line = p.stdout.readline()
    if not line.startswith("READY"):
        p.kill()
        raise GuideError(f"camd did not start (said {line!r}); see {log.name}")
    return p


def run_block(root, b):
    """Runs one block (again while its retry budget lasts); None or why it failed."""
    deadline = time.monotonic() + b.retry * TIMEOUT_SCALE
    while True:
        rc, out = root.run(b.code, BLOCK_TIMEOUT)
        why = None
        if rc != 0:
            why = f"exit status {rc}"
        elif b.expect is not None:
            miss = check_output(b.expect, out)
            if miss is not None:
                why = f"the output lacks the guide's line {miss!r}"
        if why is None or time.monotonic() >= deadline:
            return why, out
        time.sleep(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--debs", help="directory with venuewatch-agent_*.deb, venuewatch-server_*.deb")
    ap.add_argument("--workdir", help="where the root and logs go (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the root and logs")
    ap.add_argument("--list", action="store_true", help="print the blocks, run nothing")
    ap.add_argument("guides", nargs="+", metavar="GUIDE[:PART]",
                    help="run order; GUIDE alone is all its parts")
    a = ap.parse_args()

    try:
        blocks = schedule(a.guides)
    except (GuideError, OSError) as e:
        print(f"guides_test: {e}", file=sys.stderr)
        return 1
    if a.list:
        for b in blocks:
            print(f"--- {b.where()} (retry {b.retry}s, {'checked' if b.expect else 'unchecked'})")
            print(b.code, end="")
        return 0
    if not a.debs:
        ap.error("--debs DIR is required (scripts/package.sh DIR builds them)")
    # The two the guides install (not the -dbgsym ones beside them).
    debs = sorted(f for f in os.listdir(a.debs) if f.endswith(".deb") and
                  f.startswith(("venuewatch-agent_", "venuewatch-server_")))
    for want in ("venuewatch-agent_", "venuewatch-server_"):
        if not any(f.startswith(want) for f in debs):
            print(f"guides_test: no {want}*.deb in {a.debs}", file=sys.stderr)
            return 1
    if os.geteuid() != 0:
        print("guides_test: needs root (mkroot, systemd-nspawn, nsenter)", file=sys.stderr)
        return 2
    for port, who in ((COLLECTOR_PORT, "the collector"), (CAMD_PORT, "the test cameras")):
        if not port_free(port):
            print(f"guides_test: port {port} ({who} in the guides) is in use on this host",
                  file=sys.stderr)
            return 1

    work = a.workdir or tempfile.mkdtemp(prefix="vw-guides.")
    os.makedirs(work, exist_ok=True)
    rootdir = os.path.join(work, "root")
    shutil.rmtree(rootdir, ignore_errors=True)
    nlog = open(os.path.join(work, "nspawn.log"), "w")
    clog = open(os.path.join(work, "camd.log"), "w")
    root, camd, ran, failed = Root(rootdir, nlog), None, 0, None
    try:
        camd = start_camd(clog)
        root.boot()
        # The packages arrive where the guides say the reader puts them: /root.
        for f in debs:
            shutil.copy(os.path.join(a.debs, f), os.path.join(rootdir, "root", f))
        for b in blocks:
            t0 = time.monotonic()
            why, out = run_block(root, b)
            ran += 1
            print(f"guides_test: {b.where()} {'ok' if why is None else 'FAILED'} "
                  f"({time.monotonic() - t0:.1f}s)", flush=True)
            if why is not None:
                failed = (b, why, out)
                break
    except GuideError as e:
        print(f"guides_test: {e}", file=sys.stderr)
        return 1
    finally:
        root.stop()
        if camd is not None:
            camd.terminate()
            camd.wait()
        if not a.keep and failed is None:
            shutil.rmtree(work, ignore_errors=True)
    if failed is not None:
        b, why, out = failed
        print(f"guides_test: {b.where()}: {why}\n--- the block:\n{b.code}--- its output:\n{out}",
              file=sys.stderr)
        if b.expect is not None:
            print("--- the guide expects:\n" + "\n".join(b.expect), file=sys.stderr)
        print(f"guides_test: root and logs kept in {work}", file=sys.stderr)
        return 1
    if ran != len(blocks) or failed:
        print(f"guides_test: ran {ran} of {len(blocks)} blocks", file=sys.stderr)
        return 1
    print(f"guides_test: all {ran} command blocks of {len(a.guides)} guides ran and matched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
