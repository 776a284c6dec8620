#!/usr/bin/env python3
"""HTTP hello: coroutine mode (build/sample/http_hello_co) vs aio mode (build/sample/http_hello).

Both are run the same way, `prog alone -server-service 127.0.0.1:PORT -server-proc-count N`
(the self-hosted multi-process mode, N workers sharing the listener), and both answer with
sample/http_proto.h, so only the loops differ.  wrk loads each in turn, alternating the order
every round, so drift on the machine falls on both.  127.0.0.1 only; every run is bounded.

Environment: BENCH_SECONDS (wrk duration, 5), BENCH_ROUNDS (3), BENCH_WORKERS (2),
BENCH_CONNS (50).  Prints req/s per run, the means and the ratio coroutine/aio (goal >= 0.9).
Exit status 0 when the goal is met, 1 when not, 2 when a server or wrk failed.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
AIO = os.path.join(ROOT, "build", "sample", "http_hello")
CO = os.path.join(ROOT, "build", "sample", "http_hello_co")
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONNS = int(os.environ.get("BENCH_CONNS", "50"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def start(prog, port, log):
    proc = subprocess.Popen([prog, "alone", "-server-service", "127.0.0.1:%d" % port,
                             "-server-proc-count", str(WORKERS)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if not wait_listening(port, proc):
        stop(proc)
        raise RuntimeError("%s did not start listening on %d" % (prog, port))
    return proc


def stop(proc):
    """SIGTERM the self-hosted master (it stops its workers), SIGKILL it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exchange(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: -\r\n", out)


def wrk(port, seconds):
    r = subprocess.run(["wrk", "-t2", "-c%d" % CONNS, "-d%ds" % seconds, "http://127.0.0.1:%d/" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=seconds + 30)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk failed:\n" + r.stdout)
    if "Non-2xx" in r.stdout or "Socket errors" in r.stdout:
        raise RuntimeError("wrk saw errors:\n" + r.stdout)
    return float(m.group(1))


def main():
    for p in (AIO, CO):
        if not os.access(p, os.X_OK):
            print("http: %s is missing: run make first" % p)
            return 2
    logdir = tempfile.mkdtemp(prefix="co-bench-")
    servers = {}
    try:
        for name, prog in (("aio", AIO), ("coroutine", CO)):
            port = free_port()
            log = open(os.path.join(logdir, name + ".log"), "wb")
            servers[name] = (start(prog, port, log), port, log)
        # Same bytes from both (Date aside): a pipeline of three, the last one closing.
        req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answers = {name: exchange(port, req) for name, (_, port, _) in servers.items()}
        if answers["aio"] != answers["coroutine"] or answers["aio"].count(b"HTTP/1.1 200 OK") != 3:
            print("http: the two servers answer differently:\n%r\n%r" % (answers["aio"], answers["coroutine"]))
            return 2
        print("workers %d each, wrk -t2 -c%d -d%ds, %d rounds, order alternating" % (WORKERS, CONNS, SECONDS, ROUNDS))
        for name, (_, port, _) in servers.items():
            wrk(port, 1)  # warm-up
        got = {"aio": [], "coroutine": []}
        for r in range(ROUNDS):
            order = ["aio", "coroutine"] if r % 2 == 0 else ["coroutine", "aio"]
            for name in order:
                v = wrk(servers[name][1], SECONDS)
                got[name].append(v)
                print("  round %d  %-9s %10.0f req/s" % (r + 1, name, v), flush=True)
        mean = {k: sum(v) / len(v) for k, v in got.items()}
        ratio = mean["coroutine"] / mean["aio"]
        print("mean      aio       %10.0f req/s" % mean["aio"])
        print("mean      coroutine %10.0f req/s" % mean["coroutine"])
        print("ratio coroutine/aio: %.3f (goal >= 0.9: %s)" % (ratio, "met" if ratio >= 0.9 else "NOT met"))
        for name, (proc, _, _) in servers.items():
            if proc.poll() is not None:
                print("http: the %s server died during the run (status %s)" % (name, proc.returncode))
                return 2
        return 0 if ratio >= 0.9 else 1
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print("http: %s" % e)
        return 2
    finally:
        for proc, _, log in servers.values():
            stop(proc)
            log.close()


if __name__ == "__main__":
    sys.exit(main())
