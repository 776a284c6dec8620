#!/usr/bin/env python3
"""End-to-end suite runner: every t/e2e/test_*.py (unittest), several modules at once.

Each module runs in its own process (modules use distinct ports and temp dirs), at most
E2E_JOBS at a time (default 3).  Prints each module's result and a closing
`N passed, N failed` line; exits non-zero if anything failed.  `run.py test_core` runs one module,
`run.py test_core.Core.test_fds` one test.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def module_names(argv):
    if argv:
        return argv
    return sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))


def main():
    names = module_names(sys.argv[1:])
    jobs = int(os.environ.get("E2E_JOBS", "3"))
    timeout = float(os.environ.get("E2E_MODULE_TIMEOUT", "400"))
    pending = list(names)
    running = {}
    passed = failed = skipped = 0
    t0 = time.monotonic()
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            out = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "e2e-%d-%s.log" % (os.getpid(), name)), "w+")
            p = subprocess.Popen([sys.executable, os.path.join(HERE, "unit_main.py"), name],
                                 stdout=out, stderr=subprocess.STDOUT, cwd=HERE, start_new_session=True)
            running[name] = (p, out, time.monotonic())
        time.sleep(0.05)
        for name, (p, out, started) in list(running.items()):
            rc = p.poll()
            if rc is None and time.monotonic() - started > timeout:
                os.killpg(p.pid, 9)
                p.wait()
                rc = -9
                out.write("\n%s: killed after %.0f s\n" % (name, timeout))
            if rc is None:
                continue
            del running[name]
            out.flush()
            out.seek(0)
            text = out.read()
            out.close()
            os.unlink(out.name)
            counts = [l for l in text.splitlines() if l.startswith("E2E-COUNTS ")]
            if counts:
                _, p_, f_, s_ = counts[-1].split()
                p_, f_, s_ = int(p_), int(f_), int(s_)
            else:
                p_, f_, s_ = 0, 1, 0
            if rc != 0 and f_ == 0:
                f_ = 1
            passed += p_
            failed += f_
            skipped += s_
            status = "ok" if f_ == 0 else "FAILED"
            print("== %s: %s (%d passed, %d failed, %d skipped, %.1f s)" % (
                name, status, p_, f_, s_, time.monotonic() - started), flush=True)
            if f_ or os.environ.get("E2E_VERBOSE"):
                print("\n".join(l for l in text.splitlines() if not l.startswith("E2E-COUNTS ")), flush=True)
    print("e2e: %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
