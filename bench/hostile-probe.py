#!/usr/bin/env python3
"""The hostile-client probe of issue 12, rerunnable: memory before
authorisation and slow/idle connection floods against the real daemon.

    bench/hostile-probe.py [BUILD_DIR]          (default: build)

Prints one line per figure (docs/reliability.md records them). Starts its
own moad on temporary sockets with the builtin provider and the shipped
agents; needs nothing but Python 3. Raises RLIMIT_NOFILE for itself and the
daemon (3100 connections)."""
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))


def vm(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def read_status(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return None
        data += chunk
    return int(data.split()[1])


class Moad:
    def __init__(self, config=""):
        self.dir = tempfile.mkdtemp(prefix="moad-probe-")
        self.sock = os.path.join(self.dir, "moad.sock")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write("probe-token-" + "x" * 20 + "\n")
        cfg = os.path.join(self.dir, "moad.yaml")
        with open(cfg, "w") as f:
            f.write('listen:\n  tcp: "127.0.0.1:%d"\n  bearer_token_file: %s\n%s'
                    % (self.port, os.path.join(self.dir, "token"), config))
        env = dict(os.environ, MOAD_PLUGIN_DIR=os.path.join(BUILD, "plugins"))
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET"):
            env.pop(k, None)
        self.log = open(os.path.join(self.dir, "moad.log"), "w")
        self.proc = subprocess.Popen([os.path.join(BUILD, "daemon", "moad"), "--socket", self.sock, "--state-dir",
                                      os.path.join(self.dir, "state"), "--config", cfg],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        for _ in range(600):
            if os.path.exists(self.sock) and self.get("/readyz") == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("moad did not start")

    def unix(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.sock)
        return s

    def get(self, path):
        try:
            s = self.unix()
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
            st = read_status(s)
            s.close()
            return st
        except OSError:
            return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def bodies(d, n, connect, head, total):
    """n clients each declare `total` bytes in `head` and start sending them."""
    base = vm(d.proc.pid, "VmRSS")
    statuses = []
    chunk = b"x" * MIB

    def client():
        try:
            c = connect()
            c.sendall(head % total)
            try:
                sent = 0
                while sent < total:
                    c.sendall(chunk[:min(MIB, total - sent)])
                    sent += MIB
            except OSError:
                pass
            try:
                statuses.append(read_status(c))
            except OSError:
                statuses.append(None)
            c.close()
        except OSError:
            statuses.append(None)

    ts = [threading.Thread(target=client) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    peak = vm(d.proc.pid, "VmHWM")
    counts = {}
    for st in statuses:
        counts[st] = counts.get(st, 0) + 1
    return base, peak, counts


def memory():
    d = Moad()
    try:
        tcp = lambda: socket.create_connection(("127.0.0.1", d.port), timeout=60)
        base, peak, counts = bodies(d, 64, tcp, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", 16 * MIB - 1)
        print("refused TCP peer, 64 x 16 MiB - 1 to chat: RSS %.1f MB before, peak %.1f MB; answers %s"
              % (base / MIB, peak / MIB, counts))
        base, peak, counts = bodies(d, 64, d.unix, b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Length: %d\r\n\r\n", 16 * MIB - 1)
        print("Unix peer, 64 x 16 MiB - 1 to POST /healthz: RSS %.1f MB before, peak %.1f MB; answers %s"
              % (base / MIB, peak / MIB, counts))
        base, peak, counts = bodies(d, 64, d.unix, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", 16 * MIB)
        print("allowed peer, 64 oversized chat bodies (16 MiB): RSS %.1f MB before, peak %.1f MB; answers %s"
              % (base / MIB, peak / MIB, counts))
        base, peak, counts = bodies(d, 64, d.unix, b"POST /v1/moa/agents/legal/documents HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", 16 * MIB)
        print("allowed peer, 64 x 16 MiB ingest bodies (within the limit, not JSON): RSS %.1f MB before, "
              "peak %.1f MB; answers %s" % (base / MIB, peak / MIB, counts))
    finally:
        d.stop()


def floods():
    d = Moad()
    sel = selectors.DefaultSelector()
    slow, idle = [], []
    try:
        for i in range(1100):
            try:
                s = d.unix()
                s.setblocking(False)
                s.send(b"GET /healthz HTTP/1.1\r\n")
                slow.append(s)
            except OSError:
                pass
        for i in range(2000):
            try:
                s = d.unix()
                idle.append(s)
            except OSError:
                pass
        stop = threading.Event()

        def trickle():
            # one header byte per second on every slow connection; reconnect
            # the ones the daemon closed, so the pressure stays
            while not stop.is_set():
                for k, s in enumerate(slow):
                    try:
                        s.send(b"X")
                    except OSError:
                        try:
                            s.close()
                            n = d.unix()
                            n.setblocking(False)
                            n.send(b"GET /healthz HTTP/1.1\r\n")
                            slow[k] = n
                        except OSError:
                            pass
                stop.wait(1)

        t = threading.Thread(target=trickle)
        t.start()
        time.sleep(2)
        lat, ok = [], 0
        chat = json.dumps({"model": "legal", "messages": [{"role": "user", "content": "Can my landlord keep the deposit?"}]}).encode()
        for i in range(300):
            t0 = time.monotonic()
            try:
                s = d.unix()
                if i % 3 == 2:
                    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(chat), chat))
                else:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                st = read_status(s)
                s.close()
            except OSError:
                st = None
            dt = time.monotonic() - t0
            lat.append(dt)
            ok += st == 200 and dt < 1.0
            time.sleep(0.05)
        stop.set()
        t.join()
        lat.sort()
        print("1100 slowloris + 2000 idle connections from the same uid: %d of %d healthz/chat requests "
              "answered 200 within 1 s (%.1f%%); p50 %.1f ms, p99 %.1f ms, max %.1f ms; daemon RSS %.1f MB"
              % (ok, len(lat), 100.0 * ok / len(lat), lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000,
                 lat[-1] * 1000, vm(d.proc.pid, "VmRSS") / MIB))
    finally:
        for s in slow + idle:
            s.close()
        d.stop()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    memory()
    floods()
