#!/usr/bin/env python3
"""End-to-end suite runner: every test_*.py (unittest) of t/fault and t/e2e, several modules at once.

Each module runs in its own process (modules use distinct ports and temp dirs), at most
E2E_JOBS at a time (default 3).  Prints each module's result and a closing
`N passed, N failed` line; exits non-zero if anything failed.  `run.py test_core` runs one module,
`run.py test_core.Core.test_fds` one test, `run.py fault` (or `e2e`) every module of one directory.
Module names are unique across the directories; each directory is on its modules' import path,
and t/e2e (lib.py) on every module's.

Sanitizer and valgrind reports: each module gets a report directory (E2E_REPORT_DIR) and
ASAN_OPTIONS/UBSAN_OPTIONS with log_path inside it, so an AddressSanitizer, LeakSanitizer or
UBSan report from any process of the module (masterd, a server, a worker, a tool) lands there
instead of in a log nobody reads; lib.py puts valgrind's logs (E2E_VALGRIND=1) there too, and
copies there any report it finds in a masterd log (GCC's UBSan, combined with ASan, ignores
log_path and writes to stderr, which is masterd's log for masterd and its children).  A
module with a sanitizer report, or a valgrind log with errors, fails.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import lib

HERE = os.path.dirname(os.path.abspath(__file__))
# Searched in this order; the fault modules are long, so they start first.
DIRS = [os.path.join(os.path.dirname(HERE), "fault"), HERE]
SAN_OPTS = {
    # disable_coredump=0: ASan must leave RLIMIT_CORE alone (server-core-size is tested).
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1:disable_coredump=0:log_path={d}/asan",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:log_path={d}/ubsan",
}


def all_modules():
    """{name: directory} of every test_*.py, in DIRS order."""
    out = {}
    for d in DIRS:
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.startswith("test_") and f.endswith(".py") and f[:-3] not in out:
                    out[f[:-3]] = d
    return out


def module_names(argv):
    """[(directory, name)] to run."""
    mods = all_modules()
    if not argv:
        return [(d, n) for n, d in mods.items()]
    out = []
    for a in argv:
        dirs = [d for d in DIRS if os.path.basename(d) == os.path.basename(a.rstrip("/"))]
        if dirs:
            out += [(d, n) for n, d in mods.items() if d == dirs[0]]
        else:
            out.append((mods.get(a.split(".")[0], HERE), a))
    return out


def module_env(mod_dir, report_dir):
    env = dict(os.environ, E2E_REPORT_DIR=report_dir)
    env["PYTHONPATH"] = os.pathsep.join([mod_dir] + [p for p in [env.get("PYTHONPATH")] if p])
    for k, v in SAN_OPTS.items():
        env[k] = ":".join([p for p in [os.environ.get(k)] if p] + [v.format(d=report_dir)])
    return env


def reports(report_dir):
    """Sanitizer reports, and valgrind logs with errors, left in report_dir: [(file, text)]."""
    out = []
    for f in sorted(glob.glob(os.path.join(report_dir, "*"))):
        with open(f, errors="replace") as fh:
            text = fh.read()
        name = os.path.basename(f)
        if name.startswith("vg."):
            m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            if not m or m.group(1) == "0":
                continue
        elif not lib.sanitizer_finding(text):
            continue
        out.append((name, text))
    return out


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
            mod_dir, name = pending.pop(0)
            out = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "e2e-%d-%s.log" % (os.getpid(), name)), "w+")
            rdir = tempfile.mkdtemp(prefix="e2e-reports-%s-" % name)
            os.chmod(rdir, 0o1777)  # children running as server-user write there too
            p = subprocess.Popen([sys.executable, os.path.join(HERE, "unit_main.py"), name],
                                 stdout=out, stderr=subprocess.STDOUT, cwd=mod_dir, start_new_session=True,
                                 env=module_env(mod_dir, rdir))
            running[name] = (p, out, time.monotonic(), rdir)
        time.sleep(0.05)
        for name, (p, out, started, rdir) in list(running.items()):
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
            found = reports(rdir)
            if found:
                f_ += 1
                text += "\n%s: %d sanitizer/valgrind report%s:\n" % (name, len(found), "" if len(found) == 1 else "s")
                for fname, body in found[:5]:
                    text += "---- %s ----\n%s\n" % (fname, body[-6000:])
            if found and os.environ.get("E2E_KEEP"):
                print("kept reports in", rdir)
            else:
                shutil.rmtree(rdir, ignore_errors=True)
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
