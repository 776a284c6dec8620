"""What must hold after every step of a chaos run.  Each check raises world.Failure or returns;
`Checker.passed` counts the checks that held.  Every wait is a poll with a deadline."""
import json
import re
import signal
import time

import lib  # t/e2e/lib.py
from world import Failure, poll, marked, proc_info, rss_kb

CRASHERS = ("crash", "hostile_exit")
NEVER_READY = ("tlib_noready", "hostile_noready")


class Checker:
    def __init__(self, world, cfg):
        self.w = world
        self.cfg = cfg
        self.passed = 0
        self.max_latency = 0.0
        self.confirmed = set()
        self.gen_mark = None  # (regen event time, log line index a second after it)  # (sid, applied_at) whose backoff / ready-timeout was seen logged

    def ok(self):
        self.passed += 1

    # ---- the round after every op ----

    def step(self):
        self.alive()
        self.latency()
        self.converged()
        self.accepting()
        self.crashers_backed_off()
        self.detach_rate()
        self.stale_generations()
        self.control()
        self.population()
        self.sanitizers()

    def alive(self):
        if not self.w.alive():
            rc = self.w.m.proc.returncode
            poll(self.w.sanitizer_reports, 1.0, 0.05)  # a dying ASan process may still be writing
            self.sanitizers()
            raise Failure("masterd-died", "masterd exited (%s)" % (
                "signal %d" % -rc if rc < 0 else "status %d" % rc))
        self.ok()

    def latency(self):
        """SIGUSR1 is answered by `log reopened`: the time to that line is masterd's reaction
        time.  Five tries over the bound, 0.2 s apart, before it counts (a shared machine stalls
        a process now and then; a masterd that is busy or blocked stays late every time)."""
        best = None
        for attempt in range(5):
            if attempt:
                time.sleep(0.2)
            start = len(self.w.tail.update())
            t0 = time.monotonic()
            self.w.signal(signal.SIGUSR1)
            if not poll(lambda: self.w.tail.count("log reopened", start), self.cfg.bound, 0.002):
                self.alive()
                raise Failure("latency", "SIGUSR1 not answered within %.0f s" % self.cfg.bound)
            dt = time.monotonic() - t0
            self.w.latencies.append(dt)
            self.max_latency = max(self.max_latency, dt)
            best = dt if best is None else min(best, dt)
            if dt <= self.cfg.latency:
                self.ok()
                return
        raise Failure("latency", "SIGUSR1 answered after %.0f ms at best of 5 (bound %.0f ms)" % (
            best * 1e3, self.cfg.latency * 1e3))

    def converged(self):
        """Each healthy service runs exactly its applied process count (old generations gone)."""
        for sid in self.w.HEALTHY:
            want = self.w.applied[sid]["count"]
            if not poll(lambda: len(self.w.service_pids(sid)) == want, self.cfg.converge, 0.05):
                have = self.w.service_pids(sid)
                raise Failure("converge", "%s: %d processes after %.0f s, want %d (pids %s)" % (
                    sid, len(have), self.cfg.converge, want, have))
            self.ok()

    def control(self):
        """masterctl status answers (hostile control clients or not) and agrees with /proc on
        the healthy services' processes."""
        for sid in self.w.HEALTHY:
            got = []

            def same():
                r = self.w.ctl("status", "--json", sid, timeout=self.cfg.bound + 5)
                if r.returncode != 0:
                    got[:] = ["exit %d: %s" % (r.returncode, r.stderr[-200:])]
                    return False
                svc = json.loads(r.stdout)["services"][0]
                pids = sorted(p["pid"] for p in svc["processes"])
                got[:] = [svc["state"], pids]
                return svc["state"] == "running" and pids == sorted(self.w.service_pids(sid))
            if not poll(same, self.cfg.converge, 0.1):
                raise Failure("control", "%s: masterctl status says %r, /proc %r" % (
                    sid, got, sorted(self.w.service_pids(sid))))
            self.ok()

    def accepting(self):
        """Every healthy listener answers; the background clients were never refused."""
        for addr, payload in self.w.healthy_addrs():
            last = []

            def one():
                try:
                    data = lib.fetch(addr, timeout=self.cfg.io_timeout, send=payload)
                except OSError as e:
                    last[:] = [repr(e)]
                    return False
                good = data.endswith(b"end\n") if payload is None else data.startswith(b"HTTP/1.1 200")
                last[:] = [data[-80:]]
                return good
            if not poll(one, self.cfg.converge, 0.1):
                raise Failure("accept", "%r gave no full answer within %.0f s (last: %r)" % (
                    addr, self.cfg.converge, last))
            self.ok()
        refused = self.w.clients.take_refused()
        if refused:
            raise Failure("accept", "background client refused: %r" % (refused[:3],))
        self.ok()

    def crashers_backed_off(self):
        """A crash-looping service is logged with its backoff; a never-ready one as killed."""
        now = time.monotonic()
        for sid, spec in self.w.applied.items():
            at = self.w.applied_at.get(sid, now)
            key = (sid, at)
            if key in self.confirmed:
                continue
            if spec["kind"] in CRASHERS:
                pat = "%s: slot " % sid
                what, extra = "failed", "backoff"
            elif spec["kind"] in NEVER_READY:
                pat = "%s: pid " % sid
                what, extra = "but not READY within", "ready timeout"
            else:
                continue
            seen = lambda: any(pat in l and what in l for l in self.w.tail.update())  # noqa: E731
            if seen():
                self.confirmed.add(key)
                self.ok()
            elif now - at > self.cfg.converge + 2:
                raise Failure(extra, "%s (%s) applied %.0f s ago, no `%s` logged" % (
                    sid, spec["kind"], now - at, what))

    def detach_rate(self):
        """Detaching counts toward the slot's backoff like an exit, and a crash backs off: the
        hostile children log their start times (t/tools/chaos_child CAPFILE), and in any 1 s a slot
        starts at most about 5 times (0, 0.1, 0.3, 0.7 s ...), plus one per slot for each
        SIGHUP / SIGUSR2 sent around then (a new generation starts at once)."""
        for sid, spec in self.w.applied.items():
            if spec["kind"] not in ("hostile_detach", "hostile_exit"):
                continue
            # A rate needs a window: look at least 1.2 s after the service was applied.
            young = 1.2 - (time.monotonic() - self.w.applied_at.get(sid, 0))
            if young > 0:
                time.sleep(young)
            starts = self.w.hostile_starts(sid)
            j = 0
            for i, t in enumerate(starts):
                while starts[j] < t - 1.0:
                    j += 1
                n = i - j + 1
                regen = sum(1 for e in self.w.regen_events if t - 1.5 <= e <= t + 0.5)
                bound = spec["count"] * (6 + regen) + 4
                if n > bound:
                    raise Failure("detach-backoff" if "detach" in spec["kind"] else "crash-backoff",
                                  "%s (%d slots): %d starts within 1 s (bound %d)" % (sid, spec["count"], n, bound))
            self.ok()

    def stale_generations(self):
        """A generation that never became ready is stopped as soon as a newer one starts: a
        second after the last SIGHUP/SIGUSR2, a crash-looper restarts one generation only."""
        ev = self.w.regen_events
        last = ev[-1] if ev else 0
        if time.monotonic() - last < 1.0:
            return
        if self.gen_mark is None or self.gen_mark[0] != last:
            self.gen_mark = (last, len(self.w.tail.update()))
            return
        lines = self.w.tail.update()[self.gen_mark[1]:]
        for sid, spec in self.w.applied.items():
            if spec["kind"] not in CRASHERS:
                continue
            gens = set(re.findall(r" %s: started pid \d+ \(slot \d+, generation (\d+)\)" % re.escape(sid),
                                  "\n".join(lines)))
            if len(gens) > 1:
                raise Failure("stale-generation", "%s: generations %s still restarted %.1f s after the last "
                              "SIGHUP/SIGUSR2" % (sid, sorted(gens, key=int), time.monotonic() - last))
            self.ok()

    def population(self):
        n = len(marked(self.w.run_id))
        if n > self.cfg.max_procs:
            raise Failure("population", "%d processes of this run alive (max %d)" % (n, self.cfg.max_procs))
        self.ok()

    def sanitizers(self):
        r = self.w.sanitizer_reports()
        if r:
            raise Failure("sanitizer", r[0])
        self.ok()

    # ---- masterd killed, masterd stopped ----

    def after_master_killed(self, kids):
        """kill -9 of masterd: every child it had (not an adopted daemon) is gone within the
        bound.  Returns the daemons still alive (the caller removes them)."""
        def left():
            out = []
            for pid in kids:
                info = proc_info(pid)
                if info and info[0] != "Z" and info[2] != "chaos-daemon":
                    out.append(pid)
            return out
        if poll(lambda: not left(), self.cfg.orphan_bound, 0.05) is None:
            rest = left()
            raise Failure("orphans", "%d children alive %.1f s after masterd was killed: %s" % (
                len(rest), self.cfg.orphan_bound, ["%d %s" % (p, self.w.seen.get(p, ("", "", "?"))[2]) for p in rest]))
        self.ok()

    def resources(self):
        """In the canonical state, masterd's fd count and RSS are back to its baseline."""
        if self.w.baseline is None:
            return
        fds0, rss0 = self.w.baseline
        pid = self.w.pid
        if not poll(lambda: lib.fd_count(pid) <= fds0 + self.cfg.fd_slack, self.cfg.converge, 0.1):
            raise Failure("fd-leak", "masterd has %d fds, %d at the start (slack %d): %s" % (
                lib.fd_count(pid), fds0, self.cfg.fd_slack, sorted(lib.fd_links(pid).values())))
        self.ok()
        rss = rss_kb(pid)
        if rss > rss0 + self.cfg.rss_slack_kb:
            raise Failure("rss", "masterd RSS %d kB, %d kB at the start (slack %d kB)" % (
                rss, rss0, self.cfg.rss_slack_kb))
        self.ok()

    def after_stop(self, rc, seen_before):
        if rc != 0:
            raise Failure("stop", "masterd exited %r on SIGTERM" % rc)
        self.ok()
        left = poll(lambda: not marked(self.w.run_id), self.cfg.orphan_bound, 0.05)
        if left is None:
            rest = marked(self.w.run_id)
            raise Failure("leftover", "%d processes of the run alive after masterd stopped: %s" % (
                len(rest), ["%d %s %s" % (p, i[2], self.w.seen.get(p, ("", "", ""))[2]) for p, i in rest.items()]))
        self.ok()
        alive = [p for p, (start, comm, cmd) in seen_before.items()
                 if (proc_info(p) or (None,) * 4)[3] == start and proc_info(p)[0] != "Z"]
        if alive:
            raise Failure("leftover", "descendants alive after stop: %s" % alive)
        self.ok()


def parse_reload(line):
    """'ok', 'error' or None for a masterd log line."""
    if re.search(r"reload: \d+ started", line):
        return "ok"
    if "reload:" in line and "nothing changed" in line:
        return "error"
    return None
