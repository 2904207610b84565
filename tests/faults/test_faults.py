#!/usr/bin/python3
"""Fault injection: delivery loses nothing and doubles nothing (issue 4).

    /usr/bin/python3 tests/faults/test_faults.py [Class.test_name ...]
    VW_FAULTS_FULL=1 ...   the full counts (200 agent kills, 50 server kills): run_full.sh

Every scenario ends in FaultTest.verify() (faultlib.py): the agent's own record of what it produced
against what the collector stored, exactly once, minus what buffer_overflow results reported.
Needs root for the network namespaces and the tmpfs mount.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultlib import (AGENT, COMMITTED_RE, FULL, HERE, ORG, CITY,  # noqa: E402
                      SYSTEM_PYTHON, FaultTest, Netns, Pki, main, query, wait_for)


def ledger_max(proc):
    """The highest seq this agent process logged as committed."""
    found = COMMITTED_RE.findall(proc.stderr())
    return int(found[-1][1]) if found else 0


class AgentKilled(FaultTest):
    def test_agent_killed_at_random_moments_during_uploads(self):
        s = self.server_setup()
        self.server_start(s)
        conf = self.agent_conf(s, self.cameras())
        rounds = 200 if FULL else 10
        for i in range(rounds):
            p = self.agent_start(conf)
            # This run's uploads are flowing (the collector's mark moves) ...
            self.wait_uploading(s, timeout=30)
            # ... then let a random number of further commits (each one kicks an upload)
            # pass, so the kill lands anywhere: mid-request, between commit and ack, in ack.
            target = ledger_max(p) + self.rng.randint(0, 6)
            wait_for(lambda: ledger_max(p) >= target, 20, f"run {i}: commit of seq {target}",
                     interval=0.02)
            self.agent_kill(p)
        p = self.agent_start(conf)
        self.wait_drained(s)
        p.stop()
        self.verify(s)


class ServerKilled(FaultTest):
    def test_server_killed_during_ingest(self):
        s = self.server_setup()
        self.server_start(s)
        p = self.agent_start(self.agent_conf(s, self.cameras()))
        rounds = 50 if FULL else 5
        for i in range(rounds):
            self.wait_uploading(s, timeout=40)
            # Kill within the stream of ingests: after a random number of further commits.
            target = ledger_max(p) + self.rng.randint(0, 6)
            wait_for(lambda: ledger_max(p) >= target, 20, f"round {i}: commit of seq {target}",
                     interval=0.02)
            self.server_kill(s)
            self.server_start(s)
        self.wait_drained(s)
        p.stop()
        self.verify(s)


class CollectorDown(FaultTest):
    def test_backlog_drains_in_order_after_outage(self):
        s = self.server_setup()
        self.server_start(s)
        conf = self.agent_conf(s, self.cameras())
        p = self.agent_start(conf)
        self.wait_uploading(s)
        self.server_kill(s, sig=signal.SIGTERM)
        mark = self.high_seq(s)
        # A backlog of at least 60 results builds while the collector is away.
        wait_for(lambda: ledger_max(p) >= mark + 60, 60, "a backlog of 60 results")
        status = subprocess.run([AGENT, "-c", str(conf), "status"], capture_output=True,
                                text=True, timeout=10)
        self.assertIn("upload to collector: retrying", status.stdout, status.stdout)
        self.server_start(s)
        self.wait_drained(s, timeout=60)
        p.stop()
        self.assertIn("event=upload_recovered", p.stderr())
        v = self.verify(s)
        seqs = v["seqs_in_arrival"]
        self.assertEqual(seqs, sorted(seqs), "the collector stored the backlog out of order")


class Refused(FaultTest):
    def test_refusal_stops_uploads_keeps_results_and_resumes_after_fix(self):
        s = self.server_setup()
        self.server_start(s)
        # The agent holds a valid certificate, but for another site: the collector says 403.
        wrong = self.h.ca_issue(s["conf"], "site-other", ORG, city=CITY)
        d = self.h.path("agent-pki")
        d.mkdir()
        for name in ("ca.crt", "agent.crt", "agent.key"):
            shutil.copy(wrong.dir / name, d / name)
        conf = self.agent_conf(dict(s, pki=Pki(d)), self.cameras())
        p = self.agent_start(conf)
        p.wait_for_output(r"level=error event=upload_refused", 30)
        n0 = ledger_max(p)
        wait_for(lambda: ledger_max(p) >= n0 + 30, 60, "results still committed while refused")
        log = p.stderr()
        self.assertEqual(log.count("event=upload_refused"), 1, "refused uploads were retried")
        self.assertNotIn("event=upload_failed", log)
        self.assertEqual(self.high_seq(s), 0)
        status = subprocess.run([AGENT, "-c", str(conf), "status"], capture_output=True,
                                text=True, timeout=10)
        self.assertIn("upload to collector: refused", status.stdout, status.stdout)
        # SIGHUP retries at once; nothing has changed, so the answer is the same.
        p.send(signal.SIGHUP)
        p.wait_for_output(r"event=upload_resumed previous=refused", 10)
        wait_for(lambda: p.stderr().count("event=upload_refused") == 2, 30, "refused again")
        # The operator installs the right certificate (key first, as enroll does): the
        # agent sees the new file and all of it arrives, no signal needed.
        for name in ("ca.crt", "agent.key", "agent.crt"):
            shutil.copy(s["pki"].dir / name, d / name)
        p.wait_for_output(r"event=certificate_changed path=\S+agent\.crt action=retry_upload", 15)
        self.wait_drained(s)
        p.stop()
        self.verify(s)


    def test_reset_outbox_continues_under_a_new_epoch_not_skipped_as_resends(self):
        s = self.server_setup()
        self.server_start(s)
        cams = self.cameras(ok=0, down=4)
        conf = self.agent_conf(s, cams)
        p = self.agent_start(conf)
        self.wait_uploading(s, more=40)
        p.stop()
        old = query(self.state_dir / "outbox.db", "SELECT id FROM epoch")[0][0]
        # A new state dir: seqs start at 1 again, below the old run's mark. Its new outbox is
        # a new epoch (issue 10.2): stored from seq 1, neither skipped nor refused.
        shutil.rmtree(self.state_dir)
        p = self.agent_start(self.agent_conf(s, cams, name="agent2.ini"))
        new = wait_for(lambda: query(self.state_dir / "outbox.db", "SELECT id FROM epoch")[0][0],
                       30, "the new outbox")
        self.assertNotEqual(new, old)

        def stored():
            rows = query(s["db"], "SELECT count(*), min(seq), max(seq) FROM results r"
                                  " JOIN epochs e ON e.agent_id = r.agent_id AND e.ord = r.epoch"
                                  " WHERE e.epoch = ?", (new,))[0]
            return rows if rows[0] >= 20 else None

        count, low, high = wait_for(stored, 60, "the reset agent's results stored")
        self.assertEqual((low, count), (1, high), "every seq of the new epoch stored once")
        self.assertNotIn("event=upload_refused", p.stderr())
        p.stop()


class NetworkFaults(FaultTest):
    def test_loss_delay_and_partition_between_agent_and_collector(self):
        ns = Netns(str(os.getpid() % 100000))
        self.addCleanup(ns.close)
        s = self.server_setup(host=ns.ns_ip, netns=ns.name)
        self.server_start(s)
        if not ns.has_netem:
            # No sch_netem in this kernel: the agent talks through the delaying relay.
            relay = self.h.start("relay", [SYSTEM_PYTHON, str(HERE / "relay.py"), "--to",
                                           f"{ns.ns_ip}:{s['port']}", "--delay", "1"])
            m = relay.wait_for_output(r"^READY port=(\d+)$", 10, stream="stdout")
            ns.relay = relay
            s = dict(s, url=f"https://127.0.0.1:{m.group(1)}")
        # 15 s: a TLS handshake and a request cost ~3 round trips, 6 s at 1 s each way.
        p = self.agent_start(self.agent_conf(s, self.cameras(), timeout="15s"))
        self.wait_uploading(s)
        # Each phase lasts until uploads have made progress through it.
        for phase, fault, progress in (("30% loss", lambda: ns.drop(30), 30),
                                       ("1 s delay", lambda: ns.delay(1.0), 20)):
            fault()
            self.wait_uploading(s, timeout=120, more=progress)
            print(f"faults: {phase}: uploads progressed", file=sys.stderr)
        failures = p.stderr().count("event=upload_failed")
        ns.drop(100)
        mark = self.high_seq(s)
        wait_for(lambda: p.stderr().count("event=upload_failed") > failures and
                 ledger_max(p) >= mark + 40, 60, "uploads failing across the partition")
        ns.clear()
        self.wait_drained(s, timeout=90)
        p.stop()
        self.verify(s)


class DiskFull(FaultTest):
    def test_full_state_disk_is_counted_overflow_and_recovers(self):
        h = self.h
        mnt = h.path("agent-state")
        mnt.mkdir()
        # 12 MiB: room for the 4 MiB ballast (made only with twice that free) and a database.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(mnt)],
                       check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", str(mnt)])
        s = self.server_setup()
        self.server_start(s)
        conf = self.agent_conf(s, self.cameras(), state_dir=mnt)
        p = self.agent_start(conf)
        self.wait_uploading(s)
        self.server_kill(s, sig=signal.SIGTERM)  # the backlog must stay on the small disk
        mark = self.high_seq(s)
        wait_for(lambda: ledger_max(p) >= mark + 40, 60, "a backlog of 40 results")
        filler = mnt / "filler"

        def fill(leave):
            st = os.statvfs(mnt)
            # Never fill the disk under the mount point: the tmpfs must still be there.
            self.assertTrue(os.path.ismount(mnt) and st.f_blocks * st.f_frsize <= 16 << 20,
                            f"{mnt} is no longer the 12 MiB tmpfs")
            free = st.f_bavail * st.f_frsize
            with open(filler, "ab") as f:
                f.write(b"\0" * max(0, free - leave))

        # Stage 1: the disk fills; the ballast goes, the oldest rows go, counted.
        fill(leave=32 << 10)
        wait_for(lambda: "cause=disk_full" in p.stderr() or fill(leave=32 << 10), 60,
                 "a disk_full overflow")
        # Stage 2: full again with no ballast left: results that cannot be stored are counted.
        def disk_full_again():
            fill(leave=8 << 10)  # SQLite gives WAL pages back after a failure: keep it full
            return p.stderr().count("event=results_not_stored") >= 3

        wait_for(disk_full_again, 60, "three appends refused by the full disk")
        status = subprocess.run([AGENT, "-c", str(conf), "status"], capture_output=True,
                                text=True, timeout=10)
        self.assertRegex(status.stdout, r"results dropped \(buffer full\): [1-9]", status.stdout)
        self.assertTrue(p.alive(), "the agent died on a full disk")
        # Space returns, the collector too: everything still held drains.
        filler.unlink()
        self.server_start(s)
        self.wait_drained(s, timeout=90)
        self.assertTrue(p.alive(), "the agent died on a full disk")
        p.stop()
        self.assertNotIn("AddressSanitizer", p.stderr())
        v = self.verify(s, require_overflow=True)
        self.assertTrue(v["reported"], v)


if __name__ == "__main__":
    if os.geteuid() != 0 or not shutil.which("tc"):
        print("faults: needs root and tc (iproute2) for namespaces and tmpfs", file=sys.stderr)
    main()
