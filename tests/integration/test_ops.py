"""Operations: moad as a systemd service, without PID 1.

* socket activation: through systemd-socket-activate, and with a listening
  socket this test holds itself across a restart of the daemon (what
  systemd does for Accept=no units), so requests made while no daemon runs
  are queued and answered by the next one;
* sd_notify: READY=1 after the socket listens, STATUS=, WATCHDOG=1 pings,
  RELOADING=1/READY=1 around SIGHUP, STOPPING=1 on SIGTERM;
* reload under load: SIGHUP and POST /v1/moa/reload while chat requests
  stream, bad configurations rejected, agents appearing and disappearing;
* the unit files: systemd-analyze verify and the offline exposure score.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from moadtest import BUILD, MOAD, MOCK, SRC, Daemon, UnixHTTPConnection, parse_sse


# Exec wrapper standing in for systemd's half of the protocol: puts the
# listening sockets (argv[1]: comma-separated fds, -1 for none) at fd 3, 4,
# ... and sets LISTEN_FDS, LISTEN_PID (and
# WATCHDOG_PID when a watchdog is asked for) to its own pid, which becomes
# moad's pid on exec.
EXEC_WRAPPER = r"""
import fcntl, os, sys
fds = [int(x) for x in sys.argv[1].split(",") if int(x) >= 0]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
if fds:
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_PID"] = str(os.getpid())
if "WATCHDOG_USEC" in os.environ:
    os.environ["WATCHDOG_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""

SANITIZER_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
QUESTION = "How does compound interest grow savings over time?"


def moad_env(extra=None):
    e = dict(os.environ)
    for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
              "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        e.pop(k, None)
    e.setdefault("MOAD_PLUGIN_DIR", os.path.join(BUILD, "plugins"))
    if extra:
        e.update(extra)
    return e


def assert_clean_log(tc, log):
    for bad in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
        tc.assertNotIn(bad, log, "sanitizer report in the daemon log:\n" + log[-6000:])


def unix_request(sock, method, target, body=None, headers=None, timeout=120):
    """One request on a fresh connection to the Unix socket `sock`.
    Returns (status, headers dict (lower-case), body bytes)."""
    return RawClient(sock, method, target, body, headers, timeout).response()


def chat_body(stream, model="moa", question=QUESTION):
    return {"model": model, "messages": [{"role": "user", "content": question}], "stream": stream}


def check_chat(status, data, stream):
    """None when the reply is a complete, successful answer; else why not."""
    if status != 200:
        return "status %d: %r" % (status, data[:300])
    if stream:
        events = parse_sse(data)
        if not events or events[-1] != "[DONE]":
            return "stream did not end with [DONE]: %r" % data[-300:]
        text = ""
        for ev in events[:-1]:
            j = json.loads(ev)
            if "error" in j:
                return "error event: %r" % ev
            for ch in j.get("choices", []):
                text += (ch.get("delta") or {}).get("content") or ""
        return None if text.strip() else "empty streamed answer"
    j = json.loads(data)
    content = j["choices"][0]["message"]["content"]
    return None if content and content.strip() else "empty answer"



def unix_listening(path):
    """Is a socket bound at @path listening (/proc/net/unix: __SO_ACCEPTCON)?"""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            if len(cols) >= 8 and cols[7] == path and int(cols[3], 16) & 0x10000:
                return True
    return False

class RawClient:
    """A connection made (and a request written) before anyone accepts it:
    the kernel queues it on the listening socket."""

    def __init__(self, path, method, target, body=None, headers=None, timeout=120):
        self.conn = UnixHTTPConnection(path, timeout=timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        self.conn.request(method, target, body=body, headers=h)

    def response(self):
        r = self.conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        self.conn.close()
        return r.status, hdrs, data


class Proc:
    """A moad (or activator) process with its own log file."""

    def __init__(self, argv, env, log_path, pass_fds=()):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, pass_fds=pass_fds)

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if text in self.read_log():
                return True
            if self.proc.poll() is not None:
                return text in self.read_log()
            time.sleep(0.02)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


def moad_argv(tmp, fd=-1, socket_path=None, extra=()):
    """moad started through EXEC_WRAPPER: with fd >= 0 (or a list of fds)
    it is socket-activated."""
    fds = ",".join(str(f) for f in fd) if isinstance(fd, (list, tuple)) else str(fd)
    argv = [sys.executable, "-c", EXEC_WRAPPER, fds, MOAD, "--state-dir",
            os.path.join(tmp, "state"), "--log-level", "debug"]
    if socket_path:
        argv += ["--socket", socket_path]
    return argv + list(extra)


def listening_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(128)
    return s


class SocketActivation(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="moad-ops-")
        self.sock = os.path.join(self.tmp, "moad.sock")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.stop(signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def finish(self, p):
        """SIGTERM, exit status 0, clean log."""
        self.assertEqual(p.stop(), 0, p.read_log()[-4000:])
        log = p.read_log()
        assert_clean_log(self, log)
        self.assertIn("stopped", log)
        return log

    def test_systemd_socket_activate(self):
        activator = shutil.which("systemd-socket-activate")
        if not activator:
            self.skipTest("systemd-socket-activate not installed (package systemd)")
        other = os.path.join(self.tmp, "not-used.sock")
        argv = [activator, "-l", self.sock, "-E", "MOAD_PLUGIN_DIR=" + moad_env()["MOAD_PLUGIN_DIR"]]
        # The activator passes only a few variables on to the child.
        for k in SANITIZER_ENV:
            if k in os.environ:
                argv += ["-E", "%s=%s" % (k, os.environ[k])]
        argv += ["--", MOAD, "--socket", other, "--state-dir", os.path.join(self.tmp, "state"),
                 "--log-level", "debug"]
        p = Proc(argv, moad_env(), os.path.join(self.tmp, "moad.log"))
        self.procs.append(p)
        end = time.time() + 30
        # The file appears at bind(), before listen(): wait for the listen
        # (a connection would start moad, which this test looks at first).
        while not unix_listening(self.sock):
            self.assertIsNone(p.proc.poll(), p.read_log())
            self.assertLess(time.time(), end, "activator never listened on its socket")
            time.sleep(0.02)
        ino = os.stat(self.sock).st_ino

        # Nobody has connected yet: the activator waits, moad is not running.
        exe = os.readlink("/proc/%d/exe" % p.proc.pid)
        self.assertTrue(exe.endswith("systemd-socket-activate"), exe)

        # This connection, made before moad exists, starts it and is answered
        # by it (the activator execs moad in its own pid, so LISTEN_PID fits).
        early = RawClient(self.sock, "POST", "/v1/chat/completions", chat_body(False),
                          {"x-request-id": "ops-early"})
        st, h, data = early.response()
        self.assertIsNone(check_chat(st, data, False))
        self.assertEqual(h.get("x-request-id"), "ops-early")
        self.assertEqual(os.path.realpath(os.readlink("/proc/%d/exe" % p.proc.pid)), os.path.realpath(MOAD))

        st, _, data = unix_request(self.sock, "GET", "/readyz")
        self.assertEqual((st, json.loads(data)["status"]), (200, "ready"))
        st, _, data = unix_request(self.sock, "POST", "/v1/chat/completions", chat_body(True))
        self.assertIsNone(check_chat(st, data, True))

        log = p.read_log()
        self.assertIn("serving 1 socket(s) passed by systemd", log)
        # --socket does not apply when a socket is passed.
        self.assertFalse(os.path.exists(other))

        self.finish(p)
        # moad must not unlink (or replace) a socket it was given.
        st_after = os.lstat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st_after.st_mode))
        self.assertEqual(st_after.st_ino, ino)

    def start_on(self, lsock, name):
        p = Proc(moad_argv(self.tmp, lsock.fileno(), os.path.join(self.tmp, "unused-%s.sock" % name)),
                 moad_env(), os.path.join(self.tmp, "%s.log" % name), pass_fds=(lsock.fileno(),))
        self.procs.append(p)
        return p

    def test_unix_and_tcp_sockets_passed(self):
        usock = listening_socket(self.sock)
        self.addCleanup(usock.close)
        tsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(tsock.close)
        tsock.bind(("127.0.0.1", 0))
        tsock.listen(16)
        port = tsock.getsockname()[1]
        fds = (usock.fileno(), tsock.fileno())
        p = Proc(moad_argv(self.tmp, fds, os.path.join(self.tmp, "unused.sock")), moad_env(),
                 os.path.join(self.tmp, "moad.log"), pass_fds=fds)
        self.procs.append(p)
        self.assertEqual(unix_request(self.sock, "GET", "/readyz")[0], 200)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(False)),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        self.assertIsNone(check_chat(r.status, r.read(), False))
        c.close()
        self.assertIn("serving 2 socket(s) passed by systemd", p.read_log())
        self.finish(p)
        self.assertTrue(os.path.exists(self.sock))

    def test_refuses_a_socket_that_is_not_listening(self):
        # A bound Unix socket without listen(): moad must refuse it clearly.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(self.sock)
        p = Proc(moad_argv(self.tmp, s.fileno()), moad_env(), os.path.join(self.tmp, "moad.log"),
                 pass_fds=(s.fileno(),))
        self.procs.append(p)
        self.assertNotEqual(p.proc.wait(60), 0)
        log = p.read_log()
        self.assertIn("is not a listening stream socket", log)
        assert_clean_log(self, log)

    def test_restart_on_held_socket_loses_no_request(self):
        # What systemd does for Accept=no: it keeps the listening socket
        # while the service restarts. Here this test holds it.
        lsock = listening_socket(self.sock)
        self.addCleanup(lsock.close)
        ino = os.stat(self.sock).st_ino

        a = self.start_on(lsock, "first")
        # Connecting always works (the kernel queues it); the answer comes
        # once moad runs.
        st, _, data = unix_request(self.sock, "POST", "/v1/chat/completions", chat_body(False),
                           {"x-request-id": "ops-before"})
        self.assertIsNone(check_chat(st, data, False))
        self.assertEqual(a.proc.pid, int(re.search(r"moad\[(\d+)\]", a.read_log()).group(1)))
        self.assertTrue(a.wait_log("[ops-before]", 10))
        self.finish(a)
        self.assertEqual(os.stat(self.sock).st_ino, ino, "moad removed the socket it was passed")

        # No daemon runs now: these connections wait in the listen queue.
        waiting = [RawClient(self.sock, "POST", "/v1/chat/completions", chat_body(stream),
                             {"x-request-id": "ops-gap-%d" % i})
                   for i, stream in enumerate((False, True, False, True))]
        probe = RawClient(self.sock, "GET", "/readyz", headers={"x-request-id": "ops-gap-ready"})

        b = self.start_on(lsock, "second")
        for i, c in enumerate(waiting):
            st, h, data = c.response()
            self.assertIsNone(check_chat(st, data, i % 2 == 1), "queued request %d" % i)
            self.assertEqual(h.get("x-request-id"), "ops-gap-%d" % i)
        self.assertEqual(probe.response()[0], 200)
        log_b = self.finish(b)
        for i in range(4):
            self.assertIn("[ops-gap-%d]" % i, log_b, "the second instance answered the queued requests")
        self.assertNotIn("[ops-gap-0]", a.read_log())
        self.assertEqual(os.stat(self.sock).st_ino, ino)

    def test_restart_under_continuous_load(self):
        # Clients keep sending (a new connection per request) while the
        # daemon is stopped and a new one started on the same socket.
        lsock = listening_socket(self.sock)
        self.addCleanup(lsock.close)
        a = self.start_on(lsock, "first")
        self.assertEqual(unix_request(self.sock, "GET", "/readyz")[0], 200)

        stop = threading.Event()
        results, failures = [], []

        def client(k):
            n = 0
            while not stop.is_set():
                stream = (n + k) % 2 == 1
                rid = "ops-load-%d-%d" % (k, n)
                try:
                    st, _, data = unix_request(self.sock, "POST", "/v1/chat/completions", chat_body(stream),
                                       {"x-request-id": rid})
                    why = check_chat(st, data, stream)
                except Exception as e:  # noqa: BLE001 - every failure counts
                    why = "%s: %s" % (type(e).__name__, e)
                (failures if why else results).append((rid, why))
                n += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        def wait_results(n):
            end = time.time() + 120
            while len(results) + len(failures) < n and time.time() < end:
                time.sleep(0.01)

        try:
            wait_results(6)
            a.proc.send_signal(signal.SIGTERM)
            self.assertEqual(a.proc.wait(60), 0)
            time.sleep(0.3)  # requests pile up in the listen queue
            n = len(results) + len(failures)
            b = self.start_on(lsock, "second")
            wait_results(n + 6)
        finally:
            stop.set()
            for t in threads:
                t.join(180)
        self.assertEqual(failures, [])
        log_a, log_b = a.read_log(), self.finish(b)
        assert_clean_log(self, log_a)
        served_a = [rid for rid, _ in results if "[%s]" % rid in log_a]
        served_b = [rid for rid, _ in results if "[%s]" % rid in log_b]
        print("\n%d answers: %d by the first instance, %d by the second" % (len(results), len(served_a), len(served_b)),
              flush=True)
        self.assertTrue(served_a and served_b, "both instances served requests")


class Notify(unittest.TestCase):
    """moad's sd_notify messages, received on our own NOTIFY_SOCKET."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="moad-ops-")
        self.sock = os.path.join(self.tmp, "moad.sock")
        self.nsock_path = os.path.join(self.tmp, "notify.sock")
        self.nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.nsock.bind(self.nsock_path)
        self.nsock.settimeout(0.2)
        self.messages = []  # (seq, line)
        self.cv = threading.Condition()
        self.done = threading.Event()
        self.reader = threading.Thread(target=self.read_loop)
        self.reader.start()
        self.p = None

    def tearDown(self):
        if self.p:
            self.p.stop(signal.SIGKILL)
        self.done.set()
        self.reader.join()
        self.nsock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def read_loop(self):
        while not self.done.is_set():
            try:
                data = self.nsock.recv(4096)
            except socket.timeout:
                continue
            with self.cv:
                for line in data.decode().split("\n"):
                    if line:
                        self.messages.append(line)
                self.cv.notify_all()

    def wait_message(self, pred, after=0, timeout=60):
        """Index of the first message at or after `after` matching pred."""
        end = time.time() + timeout
        with self.cv:
            while True:
                for i in range(after, len(self.messages)):
                    if pred(self.messages[i]):
                        return i
                left = end - time.time()
                if left <= 0:
                    self.fail("no matching notify message after #%d; got %r" % (after, self.messages))
                self.cv.wait(left)

    def start(self, watchdog_usec=None):
        extra = {"NOTIFY_SOCKET": self.nsock_path}
        if watchdog_usec:
            extra["WATCHDOG_USEC"] = str(watchdog_usec)
        self.p = Proc(moad_argv(self.tmp, -1, self.sock), moad_env(extra), os.path.join(self.tmp, "moad.log"))

    def test_lifecycle_messages(self):
        self.start(watchdog_usec=2000000)
        ready = self.wait_message(lambda m: m == "READY=1")
        # Ready means listening: the very first connection attempt works.
        st, _, data = unix_request(self.sock, "GET", "/readyz")
        self.assertEqual((st, json.loads(data)["status"]), (200, "ready"))
        self.assertEqual([m for m in self.messages[:ready] if m.startswith(("READY", "STOPPING", "RELOADING"))], [])
        i = self.wait_message(lambda m: m.startswith("STATUS="), ready)
        self.assertRegex(self.messages[i], r"^STATUS=ready: \d+ in flight, \d+ queued$")

        # The watchdog is armed from WATCHDOG_USEC/WATCHDOG_PID: pings come
        # (sd-event sends them at about half the interval).
        w1 = self.wait_message(lambda m: m == "WATCHDOG=1", ready, timeout=30)
        self.wait_message(lambda m: m == "WATCHDOG=1", w1 + 1, timeout=30)
        # STATUS= is refreshed periodically for systemctl status (every 5 s).
        self.wait_message(lambda m: m.startswith("STATUS=ready"), i + 1, timeout=30)

        gen = json.loads(unix_request(self.sock, "GET", "/v1/moa/status")[2])["generation"]
        mark = len(self.messages)
        self.p.proc.send_signal(signal.SIGHUP)
        rel = self.wait_message(lambda m: m == "RELOADING=1", mark)
        again = self.wait_message(lambda m: m == "READY=1", rel + 1)
        self.wait_message(lambda m: m.startswith("STATUS=ready"), again + 1)
        self.assertEqual(json.loads(unix_request(self.sock, "GET", "/v1/moa/status")[2])["generation"], gen + 1)
        self.assertTrue(self.p.wait_log("configuration reloaded", 10))

        mark = len(self.messages)
        self.p.proc.send_signal(signal.SIGTERM)
        self.wait_message(lambda m: m == "STOPPING=1", mark)
        self.assertEqual(self.p.stop(), 0)
        assert_clean_log(self, self.p.read_log())

    def test_no_watchdog_without_watchdog_usec(self):
        # Without WATCHDOG_USEC the loop must not ping; after READY, a reload
        # cycle completes and no WATCHDOG=1 was ever sent.
        self.start()
        ready = self.wait_message(lambda m: m == "READY=1")
        self.p.proc.send_signal(signal.SIGHUP)
        rel = self.wait_message(lambda m: m == "RELOADING=1", ready + 1)
        self.wait_message(lambda m: m == "READY=1", rel + 1)
        self.p.proc.send_signal(signal.SIGTERM)
        self.wait_message(lambda m: m == "STOPPING=1", rel + 1)
        self.assertEqual(self.p.stop(), 0)
        self.assertNotIn("WATCHDOG=1", self.messages)


GOOD_CONFIG = """\
log_level: debug
router:
  top_k: 3
limits:
  shutdown_timeout_ms: 20000
"""

EXTRA_AGENT = """\
name: opsextra
plugin: general
weight: 1.0
provider: builtin
knowledge:
  - {knowledge}/general
"""


def copy_agents(dst):
    """The shipped agents.d with knowledge and example paths made absolute."""
    src = os.path.join(SRC, "agents.d")
    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(src, name)) as f:
            text = f.read()
        text = re.sub(r"(?m)^(\s*-\s*)knowledge/", r"\g<1>" + os.path.join(src, "knowledge") + "/", text)
        text = re.sub(r"(?m)^(examples_file:\s*)examples/", r"\g<1>" + os.path.join(src, "examples") + "/", text)
        with open(os.path.join(dst, name), "w") as f:
            f.write(text)


SLOW_CONFIG = """\
providers:
  - name: mock
    type: openai
    base_url: {url}
    model: fixed-3000
    max_retries: 0
    timeout_ms: 30000
"""

SLOW_AGENT = """\
name: slow
plugin: general
provider: mock
model: fixed-3000
"""


class ReloadInFlight(unittest.TestCase):
    """A request that is still running when its configuration is replaced
    finishes on the old one, and the old one is freed after it."""

    # Regression: the finishing request dropped the last reference to the
    # replaced Runtime inside the provider's callback, which freed the
    # engine and provider under their own feet. Runtimes are now freed from
    # a defer source.
    def test_request_outlives_its_configuration(self):
        mock = subprocess.Popen([MOCK, "--port", "0"], stdout=subprocess.PIPE, text=True)
        self.addCleanup(mock.wait, 10)
        self.addCleanup(mock.terminate)
        line = mock.stdout.readline()
        self.assertTrue(line.startswith("PORT "), line)
        url = "http://127.0.0.1:%d/v1" % int(line.split()[1])
        agents = tempfile.mkdtemp(prefix="moad-ops-agents-")
        self.addCleanup(shutil.rmtree, agents, True)
        with open(os.path.join(agents, "slow.yaml"), "w") as f:
            f.write(SLOW_AGENT)
        d = Daemon(config=SLOW_CONFIG.format(url=url), agents_dir=agents)
        try:
            result = []

            def ask():
                try:
                    result.append(d.chat("hello", model="slow"))
                except OSError as e:
                    result.append((None, None, str(e).encode()))

            t = threading.Thread(target=ask)
            t.start()
            end = time.time() + 30
            while d.json("GET", "/v1/moa/status")[2]["inflight"] < 1:
                self.assertLess(time.time(), end, "the request never started")
                time.sleep(0.01)
            st, _, j = d.json("POST", "/v1/moa/reload")
            self.assertEqual(st, 200, j)
            t.join(60)
            ready = d.request("GET", "/readyz")[0] if d.proc.poll() is None else None
        finally:
            rc = d.stop()
            log = d.read_log()
            d.cleanup()
        # The daemon survived the request that outlived its configuration...
        assert_clean_log(self, log)
        self.assertEqual(rc, 0, log[-3000:])
        self.assertEqual(ready, 200)
        # ...and the request got its (old configuration's) answer.
        self.assertEqual(len(result), 1)
        st, _, data = result[0]
        self.assertEqual(st, 200, data)
        self.assertIsNone(check_chat(st, data, False))
        self.assertIn(b"fixed answer", data)


class ReloadUnderLoad(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="moad-ops-")
        self.agents = os.path.join(self.tmp, "agents.d")
        copy_agents(self.agents)
        self.d = Daemon(config=GOOD_CONFIG, agents_dir=self.agents)
        self.cfg = os.path.join(self.d.dir, "moad.yaml")

    def tearDown(self):
        rc = self.d.stop()
        log = self.d.read_log()
        self.d.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, log[-4000:])
        assert_clean_log(self, log)

    def generation(self):
        st, _, j = self.d.json("GET", "/v1/moa/status")
        self.assertEqual(st, 200)
        return j["generation"]

    def wait_generation(self, above, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            g = self.generation()
            if g > above:
                return g
            time.sleep(0.01)
        self.fail("generation stayed at %d" % above)

    def models(self):
        st, _, j = self.d.json("GET", "/v1/models")
        self.assertEqual(st, 200)
        return {m["id"] for m in j["data"]}

    def write_config(self, text):
        tmp = self.cfg + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.cfg)

    def test_reloads_while_serving(self):
        stop = threading.Event()
        ok = {"stream": 0, "plain": 0}
        failures = []
        lock = threading.Lock()

        def client(k):
            n = 0
            while not stop.is_set():
                stream = (n + k) % 2 == 1
                model = ("moa", "moa-lite")[(n // 2 + k) % 2]
                try:
                    st, _, data = self.d.request("POST", "/v1/chat/completions", chat_body(stream, model),
                                                 timeout=120)
                    why = check_chat(st, data, stream)
                except Exception as e:  # noqa: BLE001 - every failure counts
                    why = "%s: %s" % (type(e).__name__, e)
                with lock:
                    if why:
                        failures.append((model, stream, why))
                    else:
                        ok["stream" if stream else "plain"] += 1
                n += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            gen = self.generation()
            reloads = 0
            for i in range(20):
                self.d.proc.send_signal(signal.SIGHUP)
                gen = self.wait_generation(gen)
                reloads += 1
                if i % 4 == 3:
                    st, _, j = self.d.json("POST", "/v1/moa/reload")
                    self.assertEqual((st, j["status"]), (200, "reloaded"))
                    self.assertGreater(j["generation"], gen)
                    gen = j["generation"]
                    reloads += 1
                time.sleep(0.05)
            self.assertGreaterEqual(gen, 1 + reloads)
            with lock:
                served_during = ok["stream"] + ok["plain"]

            # A broken configuration: rejected, the old one keeps serving.
            self.write_config(GOOD_CONFIG + "router:\n  top_k: [oops\n")
            st, _, j = self.d.json("POST", "/v1/moa/reload")
            self.assertEqual(st, 400)
            self.assertEqual(j["error"]["code"], "reload_failed")
            self.assertRegex(j["error"]["message"], r"moad\.yaml:\d+:\d+: ")  # file:line:column
            self.assertEqual(self.generation(), gen)
            self.assertTrue(self.d.wait_log("reload failed, keeping the active configuration"))
            n_failed = self.d.read_log().count("reload failed, keeping the active configuration")
            self.d.proc.send_signal(signal.SIGHUP)
            end = time.time() + 30
            while self.d.read_log().count("reload failed, keeping the active configuration") <= n_failed:
                self.assertLess(time.time(), end, "SIGHUP with a bad config logged nothing")
                time.sleep(0.02)
            self.assertEqual(self.generation(), gen)
            st, _, data = self.d.chat(QUESTION)
            self.assertIsNone(check_chat(st, data, False))

            # A configuration that is valid YAML but wrong: also rejected.
            self.write_config(GOOD_CONFIG + "default_pipeline: no-such-pipeline\n")
            st, _, j = self.d.json("POST", "/v1/moa/reload")
            self.assertEqual(st, 400, j)
            self.assertEqual(self.generation(), gen)

            self.write_config(GOOD_CONFIG)
            st, _, j = self.d.json("POST", "/v1/moa/reload")
            self.assertEqual(st, 200, j)
            gen = j["generation"]

            # Agents come and go with the files in agents.d.
            self.assertNotIn("opsextra", self.models())
            extra = os.path.join(self.agents, "opsextra.yaml")
            with open(extra, "w") as f:
                f.write(EXTRA_AGENT.format(knowledge=os.path.join(SRC, "agents.d", "knowledge")))
            self.d.proc.send_signal(signal.SIGHUP)
            gen = self.wait_generation(gen)
            self.assertIn("opsextra", self.models())
            st, _, data = self.d.chat("How long do you boil an egg?", model="opsextra")
            self.assertIsNone(check_chat(st, data, False))
            os.unlink(extra)
            st, _, j = self.d.json("POST", "/v1/moa/reload")
            self.assertEqual(st, 200, j)
            models = self.models()
            self.assertNotIn("opsextra", models)
            self.assertTrue({"moa", "moa-lite", "legal", "medical", "finance", "code", "general"} <= models, models)
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(180)
        print("\n%d streamed + %d plain answers, %d during the 20+ reloads" % (ok["stream"], ok["plain"], served_during),
              flush=True)
        self.assertEqual(failures, [])
        self.assertGreater(served_during, 0)
        self.assertGreater(ok["stream"], 0)
        self.assertGreater(ok["plain"], 0)


class Units(unittest.TestCase):
    """The unit files as shipped, checked with systemd-analyze."""

    @classmethod
    def setUpClass(cls):
        cls.analyze = shutil.which("systemd-analyze")
        if not cls.analyze:
            raise unittest.SkipTest("systemd-analyze not installed (package systemd)")
        cls.tmp = tempfile.mkdtemp(prefix="moad-ops-units-")
        with open(os.path.join(SRC, "systemd", "moad.service")) as f:
            text = f.read()
        # verify wants ExecStart= to exist: point it at the built daemon.
        text = re.sub(r"(?m)^ExecStart=/usr/sbin/moad", "ExecStart=" + os.path.realpath(MOAD), text)
        with open(os.path.join(cls.tmp, "moad.service"), "w") as f:
            f.write(text)
        shutil.copy(os.path.join(SRC, "systemd", "moad.socket"), cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_analyze(self, *args):
        return subprocess.run([self.analyze] + list(args), cwd=self.tmp, capture_output=True, text=True, timeout=120)

    def test_verify(self):
        p = self.run_analyze("verify", "--man=no", "./moad.socket", "./moad.service")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # verify reports some problems only as messages, with status 0.
        self.assertEqual((p.stdout + p.stderr).strip(), "")

    def test_service_matches_daemon(self):
        with open(os.path.join(self.tmp, "moad.service")) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^Type=notify$")  # moad sends READY=1
        self.assertRegex(text, r"(?m)^WatchdogSec=")  # moad pings (sd_event_set_watchdog)
        self.assertRegex(text, r"(?m)^ExecReload=.*-HUP")  # SIGHUP reloads
        with open(os.path.join(self.tmp, "moad.socket")) as f:
            self.assertRegex(f.read(), r"(?m)^Accept=no$")  # one daemon, sd_listen_fds
        # The ExecStart command line is one moad accepts.
        m = re.search(r"(?m)^ExecStart=(.*)$", text)
        argv = m.group(1).split()
        cfg = os.path.join(SRC, "etc", "moad.yaml")
        argv = [cfg if a == "/etc/moad/moad.yaml" else a for a in argv]
        p = subprocess.run(argv + ["--check-config", "--agents-dir", os.path.join(SRC, "agents.d")],
                           capture_output=True, text=True, timeout=60, env=moad_env())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_security_exposure(self):
        p = self.run_analyze("security", "--offline=yes", "./moad.service")
        if p.returncode != 0 and "offline" in p.stderr.lower() and "unrecognized" in p.stderr.lower():
            self.skipTest("systemd-analyze security has no --offline here: " + p.stderr.strip())
        out = p.stdout + p.stderr
        m = re.search(r"Overall exposure level for moad\.service: (\d+\.\d+)", out)
        self.assertIsNotNone(m, out)
        print("\n" + m.group(0), flush=True)
        self.assertLessEqual(float(m.group(1)), 2.0, out)


if __name__ == "__main__":
    unittest.main()
