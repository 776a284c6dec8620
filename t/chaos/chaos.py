#!/usr/bin/env python3
"""Randomized operations tester for masterd (`make chaos`).

Drives a real masterd through a seeded random sequence of operations (reloads of valid, invalid,
crash-looping, never-ready and scale-only configs; added, removed, renamed and symlinked `.cf`
files; signal storms; kill -9 / SIGSTOP of children and of masterd; hostile children from
t/tools/chaos_child) while clients keep connecting to the healthy services, and checks the
invariants in invariants.py after every step.  On a failure it shrinks the op list to the
shortest one that still fails the same way, prints it and the seed, and exits 1.

    python3 t/chaos/chaos.py --seed N --seconds S [--ops K] [--build DIR] [--replay FILE]

Closing line: `chaos: N passed, M failed` (N = invariant checks that held).
"""
import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)

import lib  # noqa: E402  t/e2e/lib.py
import ops as opsmod  # noqa: E402
from invariants import Checker  # noqa: E402
from shrink import shrink  # noqa: E402
from world import Failure, World, cmdline, poll, rss_kb  # noqa: E402


def config(a):
    san = a.san if a.san is not None else os.path.basename(os.path.normpath(a.build)) == "build-san"
    k = 3.0 if san else 1.0
    return argparse.Namespace(
        build=os.path.abspath(a.build), san=san,
        latency=(a.latency_ms or (500 if san else 100)) / 1e3,  # masterd's reaction to a signal
        bound=10.0 * k,          # a logged answer (start, reload result, SIGUSR1) at the latest
        converge=10.0 * k,       # a service back to its process count, a listener answering
        io_timeout=5.0 * k,
        orphan_bound=2.0 * k,    # children gone after masterd is killed or stopped
        fd_slack=2,
        rss_slack_kb=a.rss_slack_kb or (262144 if san else 8192),
        max_procs=400)


def baseline(world):
    """fds and RSS of masterd once the canonical state has settled."""
    pid = world.pid
    seq = []

    def stable():
        seq.append(lib.fd_count(pid))
        return len(seq) >= 4 and len(set(seq[-4:])) == 1
    poll(stable, world.cfg.converge, 0.1)
    world.baseline = (lib.fd_count(pid), rss_kb(pid))


def finish(world, checker):
    """Back to the canonical config, check resources, stop masterd and check nothing is left."""
    world.make_canonical()
    for sid in world.HEALTHY:
        world.disk[sid]["count"] = 2 if sid != "fd_unix" else 1
        world.write_cf(sid)
    opsmod._send_and_settle(world, ["HUP"])
    checker.alive()
    checker.converged()

    def only_healthy():
        kids = world.scan()
        live = [p for p, (sid, comm, st) in kids.items()
                if comm != "chaos-daemon" and "chaos_child detach" not in cmdline(p)]
        return all(kids[p][0] in world.HEALTHY for p in live)
    if not poll(only_healthy, world.cfg.converge + 10, 0.1):
        raise Failure("converge", "processes of removed services still children of masterd: %s" % (
            {p: v for p, v in world.scan().items() if v[0] not in world.HEALTHY},))
    checker.ok()
    checker.resources()
    world.clients.paused.set()
    world.scan()
    seen = dict(world.seen)
    world.m.proc.send_signal(signal.SIGTERM)
    try:
        rc = world.m.proc.wait(world.cfg.bound * 4)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        raise Failure("stop", "masterd did not exit within %.0f s of SIGTERM" % (world.cfg.bound * 4))
    checker.after_stop(rc, seen)
    checker.sanitizers()


class OutOfTime(Exception):
    pass


def session(cfg, seed, ops=None, seconds=None, max_ops=None, skip=(), verbose=True, keep=False, deadline=None):
    """One run.  With ops, replays them; else generates from seed for `seconds` / `max_ops`.
    Past `deadline` (monotonic) a replay gives up: no failure.
    Returns (failure or None, executed ops, checker, world)."""
    rng = random.Random(seed)
    run_id = "%d-%d-%s" % (os.getpid(), seed, os.urandom(4).hex())
    world = World(cfg, run_id)
    checker = Checker(world, cfg)
    executed = []
    failure = None
    phase = "ops"
    t_end = time.monotonic() + seconds if seconds else None
    try:
        world.start()
        checker.converged()
        baseline(world)
        world.clients.start()
        checker.step()
        i = 0
        while True:
            if deadline and time.monotonic() >= deadline:
                raise OutOfTime()
            if ops is not None:
                if i >= len(ops):
                    break
                op = ops[i]
            else:
                if (t_end and time.monotonic() >= t_end) or (max_ops and i >= max_ops):
                    break
                op = opsmod.generate(rng, world, skip)
            i += 1
            executed.append(op)
            if verbose:
                print("chaos: op %d: %s" % (i, opsmod.describe(op)), flush=True)
            opsmod.apply(op, world, checker)
            checker.step()
            if world.baseline is None:
                baseline(world)
        phase = "closing"
        finish(world, checker)
    except Failure as f:
        failure = f
        failure.phase = phase
    except OutOfTime:
        pass
    finally:
        world.close(keep=keep and failure is not None)
    return failure, executed, checker, world


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--ops", type=int, default=None, help="stop after this many ops")
    ap.add_argument("--build", default=os.environ.get("ZS_BUILD") or os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--replay", help="a JSON op list written by an earlier run")
    ap.add_argument("--shrink-seconds", type=float, default=300)
    ap.add_argument("--latency-ms", type=float, default=None, help="signal reaction bound (100; SAN 500)")
    ap.add_argument("--rss-slack-kb", type=int, default=None)
    ap.add_argument("--san", type=int, default=None, help="1: generous SAN bounds (default: build-san)")
    ap.add_argument("--skip", default="", help="comma-separated op names (or junk kinds, e.g. crash) never generated")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir of a failing run")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()
    cfg = config(a)
    for exe in ("masterd/masterd", "t/tools/fdserver", "t/tools/chaos_child", "t/tools/tlib_probe", "sample/http_hello"):
        if not os.access(os.path.join(cfg.build, exe), os.X_OK):
            sys.exit("chaos: %s/%s is missing: build first (make all%s)" % (cfg.build, exe, " SAN=1" if cfg.san else ""))
    lib.BUILD = cfg.build
    lib.MASTERD = os.path.join(cfg.build, "masterd", "masterd")
    ops = None
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    if a.replay:
        with open(a.replay) as f:
            rec = json.load(f)
        ops, seed = rec["ops"], rec.get("seed", seed)
    skip = [s for s in a.skip.split(",") if s]
    print("chaos: seed %d, build %s%s, %s" % (seed, cfg.build, " (SAN)" if cfg.san else "",
                                              "replay of %d ops" % len(ops) if ops else "%.0f s" % a.seconds), flush=True)
    t0 = time.monotonic()
    failure, executed, checker, world = session(cfg, seed, ops, a.seconds, a.ops, skip, not a.quiet, a.keep)
    lat = sorted(world.latencies)
    print("chaos: %d ops in %.0f s; signal latency max %.1f ms, median %.1f ms (bound %.0f ms); %d client answers" % (
        len(executed), time.monotonic() - t0, checker.max_latency * 1e3, lat[len(lat) // 2] * 1e3 if lat else 0,
        cfg.latency * 1e3, world.clients.ok))
    if failure is None:
        print("chaos: %d passed, 0 failed (seed %d, %d ops)" % (checker.passed, seed, len(executed)))
        return 0
    print("chaos: FAIL %s %s: %s" % (failure.kind, "after op %d" % len(executed) if failure.phase == "ops" else
                                     "in the closing step, after all %d ops" % len(executed), failure.detail), flush=True)
    fd, path = tempfile.mkstemp(prefix="chaos-%d-%s." % (seed, failure.kind), suffix=".json", dir="/tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"seed": seed, "kind": failure.kind, "ops": executed}, f, indent=1)
    print("chaos: op list written to %s (--replay it)" % path)
    minimal = executed
    if a.shrink_seconds > 0 and len(executed) > 1:
        shrink_deadline = time.monotonic() + a.shrink_seconds

        def fails(cand):
            f, _, _, _ = session(cfg, seed, cand, verbose=False, deadline=shrink_deadline)
            return f.kind if f else None
        minimal, tries, out_of_time = shrink(executed, failure.kind, fails, a.shrink_seconds)
        print("chaos: shrunk %d -> %d ops in %d replays%s" % (
            len(executed), len(minimal), tries, " (time budget spent)" if out_of_time else ""))
        path2 = path.replace(".json", ".min.json")
        with open(path2, "w") as f:
            json.dump({"seed": seed, "kind": failure.kind, "ops": minimal}, f, indent=1)
        print("chaos: shortest sequence written to %s" % path2)
    print("chaos: seed %d, %s, reproduced by:" % (seed, failure.kind))
    for i, op in enumerate(minimal, 1):
        print("chaos:   %d. %s" % (i, opsmod.describe(op)))
    print("chaos:   then the closing step: junk .cf files removed, SIGHUP, resources checked, SIGTERM")
    print("chaos: %d passed, 1 failed (seed %d, %d ops)" % (checker.passed, seed, len(executed)))
    return 1


if __name__ == "__main__":
    sys.exit(main())
