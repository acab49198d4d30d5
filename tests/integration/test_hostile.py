"""Hostile clients against the real daemon: bodies are refused from the
header block, before a byte of them is buffered (access, the endpoint's own
limit, the daemon-wide total); broken framing is refused; connections that
send their header block or body too slowly are closed; a flood of idle
connections from one peer does not keep a well-behaved client out."""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from moadtest import BUILD, SRC, Daemon, DaemonTestCase

MIB = 1024 * 1024


def vm(pid, field):
    """VmRSS / VmHWM of @pid in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def connect(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(d.socket)
    return s


def read_response(s):
    """(status, headers dict lower-case, body) of one response on @s."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a response: %r" % data)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:n]


def head_only(d, method, path, headers, conn=None):
    """Sends only the header block (no body) and reads the answer: a
    status that arrives proves the daemon decided without the body."""
    s = conn or connect(d)
    req = "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, path, "".join("%s: %s\r\n" % h for h in headers))
    s.sendall(req.encode())
    try:
        return read_response(s)
    finally:
        if conn is None:
            s.close()


def closed_by_server(s, timeout=20):
    """True once the daemon has closed @s (end of file or reset)."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class EarlyAnswers(DaemonTestCase):
    """Decided from the header block: no body byte is sent by the client."""
    config = ("limits:\n  max_body_bytes: 65536\n  max_ask_bytes: 65536\n  max_ingest_bytes: 1048576\n"
              "access:\n  admin:\n    users: [0]\n")

    def test_body_limit_is_the_endpoints_own(self):
        # /healthz reads no body: 16 MiB - 1 is refused at once, not read.
        st, h, body = head_only(self.d, "POST", "/healthz", [("Content-Length", 16 * MIB - 1)])
        self.assertEqual(st, 413)
        self.assertIn("limit of 4096 bytes", json.loads(body)["error"]["message"])
        self.assertEqual(h.get("connection"), "close")
        # chat has max_body_bytes + max_ask_bytes (attached documents),
        # ingest max_ingest_bytes
        st, _, body = head_only(self.d, "POST", "/v1/chat/completions",
                                [("Content-Type", "application/json"), ("Content-Length", 2 * MIB)])
        self.assertEqual(st, 413)
        self.assertIn("limit of 131072 bytes", json.loads(body)["error"]["message"])
        st, _, body = head_only(self.d, "POST", "/v1/moa/agents/legal/documents",
                                [("Content-Type", "application/json"), ("Content-Length", MIB + 1)])
        self.assertEqual(st, 413)
        self.assertIn("limit of 1048576 bytes", json.loads(body)["error"]["message"])

    def test_small_refused_body_drained_keep_alive(self):
        """A refused body of at most 1 MiB is read and thrown away, then
        answered: a client that sends before it reads gets the 413, and the
        connection serves the next request."""
        s = connect(self.d)
        body = b"x" * 70000
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        st, h, data = read_response(s)
        self.assertEqual(st, 413)
        self.assertNotEqual(h.get("connection"), "close")
        st, _, _ = head_only(self.d, "GET", "/healthz", [], conn=s)
        self.assertEqual(st, 200)
        s.close()

    def test_body_within_limit_is_read(self):
        body = json.dumps({"query": "What is GDPR?"}).encode()
        st, _, data = self.d.request("POST", "/v1/moa/route", body, {"Content-Type": "application/json"})
        self.assertEqual(st, 200, data)

    def test_conflicting_framing(self):
        for headers, why in (([("Content-Length", 5), ("Content-Length", 7)], "more than one Content-Length"),
                             ([("Content-Length", 5), ("content-length", 5)], "more than one Content-Length"),
                             ([("Content-Length", 5), ("Transfer-Encoding", "chunked")],
                              "both Content-Length and Transfer-Encoding"),
                             ([("Transfer-Encoding", "gzip")], "unsupported Transfer-Encoding")):
            st, h, body = head_only(self.d, "POST", "/v1/chat/completions",
                                    [("Content-Type", "application/json")] + headers)
            self.assertEqual(st, 400, headers)
            e = json.loads(body)["error"]
            self.assertEqual(e["code"], "bad_framing")
            self.assertIn(why, e["message"])
            self.assertEqual(h.get("connection"), "close")

    def test_one_clean_413(self):
        """The answer is one header block and one JSON body, nothing more."""
        s = connect(self.d)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000000\r\n\r\n")
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        s.close()
        self.assertEqual(raw.count(b"HTTP/1.1"), 1, raw)
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413 "), raw)
        self.assertEqual(json.loads(body)["error"]["code"], "body_too_large")

    def test_head_everywhere_get_is(self):
        for path in ("/v1/models", "/v1/models/legal", "/v1/moa/agents", "/v1/moa/agents/legal/documents",
                     "/healthz"):
            st, h, body = self.d.request("HEAD", path)
            self.assertEqual(st, 200, path)
            self.assertEqual(body, b"", path)
            st_get, h_get, body_get = self.d.request("GET", path)
            self.assertEqual(st_get, 200, path)
            self.assertEqual(h["content-type"], h_get["content-type"], path)


def mhd_version():
    """The version of the libmicrohttpd moad runs with, as a tuple."""
    import ctypes
    from moadtest import MOAD
    out = subprocess.run(["ldd", MOAD], stdout=subprocess.PIPE, universal_newlines=True).stdout
    path = next(l.split("=>")[1].split()[0] for l in out.splitlines() if "libmicrohttpd" in l)
    lib = ctypes.CDLL(path)
    lib.MHD_get_version.restype = ctypes.c_char_p
    return tuple(int(x) for x in lib.MHD_get_version().decode().split("."))


class MalformedContentLength(DaemonTestCase):
    """A Content-Length libmicrohttpd cannot parse is answered by
    libmicrohttpd itself, before any hook of moad's runs (its
    parse_connection_headers()): 400 for one that is not a number, 413 for
    one past 2^64 - 1. What moad guarantees: that status, "Connection:
    close", the connection closed after it, moad's handler never run (no
    second answer of ours), and the daemon serving the next request.
    libmicrohttpd 0.9.75 writes its header block twice (it overwrites the
    state its error reply set; fixed upstream in 1.0.0, commit f1bfbe71):
    the count of status lines is asserted per version, so an upgrade that
    fixes it shows here (docs/reliability.md, Known limits)."""

    CASES = [(b"12abc", 400), (b"-1", 400), (b"", 400), (b"5 x", 400), (b"0x10", 400), (b"+5", 400),
             (b"18446744073709551616", 413), (b"1" * 30, 413)]

    def exchange(self, head):
        s = connect(self.d)
        s.sendall(head)
        raw = b""
        s.settimeout(20)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                raw += chunk
        except socket.timeout:
            self.fail("the connection stayed open after %r: %r" % (head, raw))
        finally:
            s.close()
        return raw

    def test_libmicrohttpds_answer_then_closed_never_a_second_answer(self):
        blocks = 2 if mhd_version() < (1, 0, 0) else 1
        heads = [b"POST /v1/moa/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + v + b"\r\n\r\n{}" for v, _ in self.CASES]
        heads.append(b"POST /v1/moa/route HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n"
                     b"Content-Length: 2\r\n\r\n{}")
        for head, (value, status) in zip(heads, self.CASES + [(b"12abc, 2", 400)]):
            raw = self.exchange(head)
            self.assertTrue(raw.startswith(b"HTTP/1.1 %d " % status), (value, raw))
            self.assertEqual(raw.count(b"HTTP/1.1 "), blocks, (value, raw))
            self.assertEqual(raw.count(b"\r\nConnection: close\r\n"), blocks, (value, raw))
            # libmicrohttpd's page, never moad's JSON: our handler did not run
            self.assertNotIn(b"x-request-id", raw.lower(), value)
            self.assertNotIn(b'{"error"', raw, value)
        st, _, j = self.d.json("GET", "/healthz")
        self.assertEqual((st, j["status"]), (200, "ok"))

    def test_numbers_moad_can_read_are_answered_once_by_moad(self):
        """Up to 2^64 - 1 (with leading zeros or blanks) the value reaches
        moad, which answers once, from the header block."""
        for value in (b"18446744073709551615", b"0001000000000000", b" 99999999"):
            raw = self.exchange(b"POST /v1/moa/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: " + value + b"\r\n\r\n")
            self.assertEqual(raw.count(b"HTTP/1.1 "), 1, (value, raw))
            self.assertTrue(raw.startswith(b"HTTP/1.1 413 "), (value, raw))
            self.assertIn(b"x-request-id", raw.lower())
            self.assertEqual(json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["code"], "body_too_large")


class RefusedPeerMemory(unittest.TestCase):
    """64 connections from a peer without the TCP token each declare and
    start sending 16 MiB - 1 bytes: all get 403 from the header block and
    the daemon's peak RSS grows by less than 48 MB (it was connections x
    16 MiB: about 1 GB)."""

    def test_refused_bodies_not_buffered(self):
        tmp = tempfile.mkdtemp(prefix="moad-hostile-")
        with open(os.path.join(tmp, "token"), "w") as f:
            f.write("t" * 32 + "\n")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        d = Daemon(config='listen:\n  tcp: "127.0.0.1:%d"\n  bearer_token_file: %s\n' %
                   (port, os.path.join(tmp, "token")))
        try:
            before = vm(d.proc.pid, "VmHWM")
            statuses = []
            payload = b"x" * MIB

            def client():
                c = socket.create_connection(("127.0.0.1", port), timeout=30)
                try:
                    c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (16 * MIB - 1))
                    try:
                        for _ in range(16):
                            c.sendall(payload)
                    except OSError:
                        pass  # the daemon answered and closed: expected
                    try:
                        statuses.append(read_response(c)[0])
                    except (OSError, AssertionError):
                        statuses.append(None)
                finally:
                    c.close()

            threads = [threading.Thread(target=client) for _ in range(64)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            after = vm(d.proc.pid, "VmHWM")
            # Every answer that could be read is a 403 (a reset may lose some).
            self.assertTrue(statuses and all(st in (403, None) for st in statuses), statuses)
            self.assertGreater(statuses.count(403), 0, statuses)
            self.assertLess(after - before, 48 * MIB,
                            "peak RSS grew %.1f MB" % ((after - before) / MIB))
            self.assertTrue(d.wait_log("tcp peer without a valid bearer token"))
        finally:
            d.cleanup()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


class BodyTotal(DaemonTestCase):
    """Bodies in flight are capped daemon-wide: with room for two 2 MB
    documents, a third declared at the same time gets 503 + Retry-After."""
    config = ("limits:\n  max_ingest_bytes: 4194304\n  max_body_total_bytes: 4400000\n"
              "jobs:\n  max_upload_bytes: 1048576\n")

    def test_total_cap(self):
        held = []
        for _ in range(2):
            s = connect(self.d)
            s.sendall(b"POST /v1/moa/agents/legal/documents HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{")
            held.append(s)
        time.sleep(0.3)  # let the daemon take both header blocks (no assertion on time)
        st, h, body = head_only(self.d, "POST", "/v1/moa/agents/legal/documents",
                                [("Content-Type", "application/json"), ("Content-Length", 2000000)])
        self.assertEqual(st, 503)
        self.assertEqual(h.get("retry-after"), "1")
        self.assertEqual(json.loads(body)["error"]["code"], "busy")
        for s in held:
            s.close()
        # Once they are gone, the room is back.
        doc = json.dumps({"title": "total-cap", "text": "Some text about leases. " * 100}).encode()
        for _ in range(50):
            st, _, data = self.d.request("POST", "/v1/moa/agents/legal/documents", doc,
                                         {"Content-Type": "application/json"})
            if st != 503:
                break
            time.sleep(0.1)
        self.assertIn(st, (200, 201, 202), data)


class SlowClients(DaemonTestCase):
    """Header block and body deadlines; a flood of idle connections from
    one peer; a well-behaved client still gets through."""
    config = ("limits:\n  header_timeout_ms: 1000\n  min_body_rate: 1024\n  max_connections: 64\n"
              "  max_connections_per_peer: 16\n")

    def test_slow_header_block_closed(self):
        s = connect(self.d)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        stop = threading.Event()

        def trickle():
            try:
                while not stop.is_set():
                    s.send(b"X")
                    stop.wait(0.2)
            except OSError:
                pass

        t = threading.Thread(target=trickle)
        t.start()
        try:
            self.assertTrue(closed_by_server(s), "a header block trickled a byte per 0.2 s was not cut off")
        finally:
            stop.set()
            t.join()
            s.close()
        self.assertTrue(self.d.wait_log("past the header deadline"))

    def test_slow_chunked_body_closed(self):
        s = connect(self.d)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        stop = threading.Event()

        def trickle():
            try:
                while not stop.is_set():
                    s.send(b"1\r\n{\r\n")
                    stop.wait(0.3)
            except OSError:
                pass

        t = threading.Thread(target=trickle)
        t.start()
        try:
            self.assertTrue(closed_by_server(s), "a body trickled at 3 bytes/s was not cut off")
        finally:
            stop.set()
            t.join()
            s.close()

    def test_keep_alive_still_works(self):
        c = self.d.conn()
        for _ in range(3):
            st, _, _ = self.d.request("GET", "/healthz", conn=c)
            self.assertEqual(st, 200)
        c.close()


class IdleFlood(DaemonTestCase):
    """The header deadline is long here (60 s), so only eviction can let a
    new client in: 200 idle connections from our uid (16 per peer, 64 in
    all); each new one takes the place of the peer's oldest idle one, and
    /healthz on a fresh connection is answered every time."""
    config = ("limits:\n  header_timeout_ms: 60000\n  max_connections: 64\n"
              "  max_connections_per_peer: 16\n")

    def test_idle_flood_does_not_lock_out(self):
        idle = []
        try:
            for _ in range(200):
                idle.append(connect(self.d))
            for _ in range(20):
                st, _, _ = head_only(self.d, "GET", "/healthz", [])
                self.assertEqual(st, 200)
            # The oldest idle ones were closed to make room; the newest not.
            self.assertTrue(closed_by_server(idle[0], timeout=10))
            self.assertFalse(closed_by_server(idle[-1], timeout=0.5))
        finally:
            for s in idle:
                s.close()
        self.assertTrue(self.d.wait_log("to make room"))


class PluginStrings(unittest.TestCase):
    """A plugin whose version, description, score reason, prompt and review
    are invalid UTF-8: the agent is listed the same way by /v1/models and
    /v1/moa/agents, stays in the route with a repaired reason, and answers
    200 with the repaired review (it was a 500 "out of memory")."""

    def test_repaired_everywhere(self):
        ad = tempfile.mkdtemp(prefix="moad-utf8-")
        know = os.path.join(SRC, "agents.d", "knowledge", "legal")
        with open(os.path.join(ad, "utf8.yaml"), "w") as f:
            f.write("name: utf8\nplugin: %s\nknowledge: [%s]\n"
                    % (os.path.join(BUILD, "tests", "plugins", "bad-utf8.so"), know))
        with open(os.path.join(ad, "general.yaml"), "w") as f:
            f.write("name: general\nplugin: general\nknowledge: [%s]\n"
                    % os.path.join(SRC, "agents.d", "knowledge", "general"))
        d = Daemon(agents_dir=ad)
        try:
            ids = [m["id"] for m in d.json("GET", "/v1/models")[2]["data"]]
            self.assertIn("utf8", ids)
            st, _, agents = d.json("GET", "/v1/moa/agents")
            self.assertEqual(st, 200)
            mine = [a for a in agents.get("data", agents.get("agents", []))
                    if a.get("name") == "utf8"]
            self.assertEqual(len(mine), 1, agents)
            self.assertIn("1.\ufffd", json.dumps(mine[0], ensure_ascii=False))
            st, _, route = d.json("POST", "/v1/moa/route", {"query": "Can my landlord keep the deposit?"})
            self.assertEqual(st, 200)
            mine = [a for a in route["agents"] if a["name"] == "utf8"]
            self.assertEqual(len(mine), 1, route)
            self.assertTrue(mine[0]["selected"], route)
            self.assertIn("\ufffd", mine[0].get("reason", ""))
            st, _, data = d.chat("Can my landlord keep the deposit?", model="utf8")
            self.assertEqual(st, 200, data)
            content = json.loads(data)["choices"][0]["message"]["content"]
            self.assertIn("reviewed \ufffd\ufffd\ufffd ok", content)
        finally:
            d.cleanup()
            import shutil
            shutil.rmtree(ad, ignore_errors=True)


class AtomicSeeding(unittest.TestCase):
    """First-start seeding of the sample knowledge is all or nothing: a
    daemon killed at any point of it leaves no half-seeded base (which would
    never be seeded again), and a leftover temporary file is thrown away."""

    def documents(self, d):
        st, _, body = d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertEqual(st, 200)
        return sorted(doc["title"] for doc in body["documents"])

    def test_kill_during_seeding(self):
        """A knowledge directory large enough that seeding takes a while;
        the daemon is killed at fractions of the time a clean start takes."""
        from moadtest import MOAD
        import shutil
        top = tempfile.mkdtemp(prefix="moad-seed-")
        know = os.path.join(top, "knowledge")
        os.mkdir(know)
        for i in range(400):
            with open(os.path.join(know, "doc-%03d.md" % i), "w") as f:
                f.write("# Lease clause %d\n\n" % i + ("The tenant pays the deposit %d. " % i) * 60)
        agents = os.path.join(top, "agents.d")
        os.mkdir(agents)
        with open(os.path.join(agents, "legal.yaml"), "w") as f:
            f.write("name: legal\nplugin: legal\nknowledge: [%s]\n" % know)
        try:
            t0 = time.monotonic()
            ref = Daemon(agents_dir=agents)
            startup = time.monotonic() - t0
            try:
                want = self.documents(ref)
            finally:
                ref.cleanup()
            self.assertEqual(len(want), 400)
            for frac in (0.1, 0.3, 0.5, 0.7, 0.9):
                state = os.path.join(top, "state-%d" % int(frac * 10))
                env = dict(os.environ, MOAD_PLUGIN_DIR=os.path.join(BUILD, "plugins"))
                p = subprocess.Popen([MOAD, "--socket", os.path.join(top, "s"), "--state-dir", state,
                                      "--agents-dir", agents],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                time.sleep(startup * frac)
                p.kill()
                p.wait()
                d = Daemon(agents_dir=agents, args=("--state-dir", state))
                try:
                    self.assertEqual(self.documents(d), want, "killed after %.2f s" % (startup * frac))
                finally:
                    d.cleanup()
                self.assertFalse(os.path.exists(os.path.join(state, "kb", "legal.db.seeding")))
        finally:
            shutil.rmtree(top, ignore_errors=True)

    def test_leftover_temporary_file(self):
        state = tempfile.mkdtemp(prefix="moad-seed-")
        try:
            os.makedirs(os.path.join(state, "kb"))
            for suffix in ("", "-wal"):
                with open(os.path.join(state, "kb", "legal.db.seeding" + suffix), "wb") as f:
                    f.write(b"half a database from a crash" * 100)
            d = Daemon(args=("--state-dir", state))
            try:
                self.assertGreater(len(self.documents(d)), 1)
            finally:
                d.cleanup()
            self.assertFalse(os.path.exists(os.path.join(state, "kb", "legal.db.seeding")))
        finally:
            import shutil
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
