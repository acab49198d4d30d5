"""Plugins in the running daemon: an out-of-tree plugin built with the
documented command line and added through agents.d, and broken plugins that
are refused while the daemon keeps serving with the others."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from moadtest import BUILD, MOACTL, MOAD, MOCK, SRC, Daemon

KNOWLEDGE = os.path.join(SRC, "agents.d", "knowledge")
SHIPPED = ("legal", "medical", "finance", "code", "general")


def agents_dir(extra):
    d = tempfile.mkdtemp(prefix="moad-plugins-")
    for name in SHIPPED:
        with open(os.path.join(d, name + ".yaml"), "w") as f:
            f.write("name: %s\nplugin: %s\nweight: %s\nknowledge: [%s]\n"
                    % (name, name, 0.6 if name == "general" else 1.0, os.path.join(KNOWLEDGE, name)))
    for name, text in extra.items():
        with open(os.path.join(d, name + ".yaml"), "w") as f:
            f.write(text)
    return d


class OutOfTree(unittest.TestCase):
    def test_build_and_load_through_config(self):
        tmp = tempfile.mkdtemp(prefix="moad-oot-")
        try:
            shutil.copy(os.path.join(SRC, "plugins", "example", "example.c"), os.path.join(tmp, "my.c"))
            env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(BUILD, "plugins"))
            cflags = subprocess.run(["pkg-config", "--cflags", "moa-plugin"], env=env, capture_output=True,
                                    text=True, check=True).stdout.split()
            subprocess.run(["cc", "-shared", "-fPIC", *cflags, "my.c", "-o", "my.so"], cwd=tmp, check=True)
            with open(os.path.join(tmp, "bread.md"), "w") as f:
                f.write("# Bread\n\nKnead the dough for ten minutes, let it rise until doubled, "
                        "then bake the bread in a hot oven at 230 degrees for thirty minutes.\n")
            ad = agents_dir({"cooking": "name: cooking\nplugin: %s\nknowledge: [%s]\n"
                                        % (os.path.join(tmp, "my.so"), os.path.join(tmp, "bread.md"))})
            d = Daemon(agents_dir=ad)
            try:
                ids = [m["id"] for m in d.json("GET", "/v1/models")[2]["data"]]
                self.assertIn("cooking", ids)
                st, _, r = d.json("POST", "/v1/moa/route", {"query": "How long should I bake bread dough in the oven?"})
                self.assertIn("cooking", r["selected"])
                st, _, data = d.chat("How long should I bake bread in the oven?", model="cooking")
                self.assertEqual(st, 200, data)
                self.assertIn("thirty minutes", json.loads(data)["choices"][0]["message"]["content"])
            finally:
                d.cleanup()
                shutil.rmtree(ad)
        finally:
            shutil.rmtree(tmp)


class Broken(unittest.TestCase):
    def test_bad_plugins_refused_daemon_serves(self):
        bad = os.path.join(BUILD, "tests", "plugins")
        extra = {}
        for name in ("bad-major", "bad-size", "bad-nosym", "bad-nullcb", "bad-init", "bad-signature"):
            extra[name] = "name: %s\nplugin: %s\n" % (name, os.path.join(bad, name + ".so"))
        extra["missing"] = "name: missing\nplugin: /nonexistent/missing.so\n"
        ad = agents_dir(extra)
        d = Daemon(agents_dir=ad)
        try:
            ids = [m["id"] for m in d.json("GET", "/v1/models")[2]["data"]]
            for name in SHIPPED:
                self.assertIn(name, ids)
            for name in extra:
                self.assertNotIn(name, ids)
            log = d.read_log()
            for name in extra:
                self.assertIn("agent %s" % name, log)
            self.assertIn("ABI", log)
            st, _, data = d.chat("What is GDPR?")
            self.assertEqual(st, 200, data)
        finally:
            d.cleanup()
            shutil.rmtree(ad)


class Refusals(unittest.TestCase):
    """An enabled agent that cannot be loaded is reported by the reload API
    (207 and the list), by moactl reload (exit 6, one line each), in the log,
    and by moad --check-config (exit 1), which loads and inits every plugin."""

    BAD = {
        # the example plugin refuses a bad option in init (-EINVAL)
        "cooking": "name: cooking\nplugin: %s\noptions:\n  per_word: \"7\"\n"
                   % os.path.join(BUILD, "plugins", "example.so"),
        "missing": "name: missing\nplugin: /nonexistent/missing.so\n",
        "typo": "name: typo\nplugin: legall\n",
    }
    WHY = {"cooking": "plugin %s: cooking init failed: Invalid argument" % os.path.join(BUILD, "plugins", "example.so"),
           "missing": "plugin /nonexistent/missing.so: No such file or directory",
           "typo": "plugin %s: No such file or directory" % os.path.join(BUILD, "plugins", "legall.so")}

    def check_config(self, ad):
        env = dict(os.environ, MOAD_PLUGIN_DIR=os.path.join(BUILD, "plugins"))
        return subprocess.run([MOAD, "--check-config", "--agents-dir", ad], capture_output=True, text=True,
                              env=env, timeout=120)

    def test_reload_api_moactl_log_check_config(self):
        ad = agents_dir({})
        self.addCleanup(shutil.rmtree, ad, True)
        p = self.check_config(ad)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("configuration OK (5 agents", p.stdout)
        self.assertIn("5 agents loaded and initialised", p.stdout)

        d = Daemon(agents_dir=ad)
        try:
            for name, text in self.BAD.items():
                with open(os.path.join(ad, name + ".yaml"), "w") as f:
                    f.write(text)
            st, _, j = d.json("POST", "/v1/moa/reload")
            self.assertEqual(st, 207, j)
            self.assertEqual(j["status"], "partial")
            self.assertEqual(j["agents"], 5)
            got = {r["agent"]: r for r in j["refused"]}
            self.assertEqual(set(got), set(self.BAD))
            for name, why in self.WHY.items():
                self.assertEqual(why, got[name]["reason"])
                self.assertEqual(got[name]["file"], os.path.join(ad, name + ".yaml"))
            ids = [m["id"] for m in d.json("GET", "/v1/models")[2]["data"]]
            self.assertIn("legal", ids)
            self.assertNotIn("cooking", ids)

            m = subprocess.run([MOACTL, "--socket", d.socket, "reload"], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(m.returncode, 6, m.stdout + m.stderr)
            self.assertEqual(m.stdout, "moad: configuration reloaded without 3 refused agent(s)\n")
            for name, why in self.WHY.items():
                self.assertIn("moactl: agent %s (%s) refused: %s\n" % (name, os.path.join(ad, name + ".yaml"), why),
                              m.stderr)

            log = d.read_log()
            for name, why in self.WHY.items():
                self.assertIn("agent %s: not available: " % name, log)
            self.assertIn("without 3 refused agent(s): ", log)

            p = self.check_config(ad)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            for name, why in self.WHY.items():
                self.assertIn("%s: agent %s refused: %s\n" % (os.path.join(ad, name + ".yaml"), name, why), p.stdout)
            self.assertIn("configuration has errors: 3 of 8 enabled agents refused", p.stdout)
            self.assertIn("refusing plugin", p.stderr)

            for name in self.BAD:
                os.unlink(os.path.join(ad, name + ".yaml"))
            st, _, j = d.json("POST", "/v1/moa/reload")
            self.assertEqual((st, j["status"], j["refused"]), (200, "reloaded", []), j)
            m = subprocess.run([MOACTL, "--socket", d.socket, "reload"], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual((m.returncode, m.stdout, m.stderr), (0, "moad: configuration reloaded\n", ""))
        finally:
            d.cleanup()


def cflags():
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(BUILD, "plugins"))
    return subprocess.run(["pkg-config", "--cflags", "moa-plugin"], env=env, capture_output=True,
                          text=True, check=True).stdout.split()


def build_versioned(out, version):
    """Compile tests/plugins/versioned.c to @out as a build signed @version,
    the way a plugin author rebuilds: the linker replaces the file."""
    src = os.path.join(SRC, "tests", "plugins", "versioned.c")
    subprocess.run(["cc", "-shared", "-fPIC", *cflags(), '-DVERSIONED_VERSION="%s"' % version, src, "-o", out],
                   check=True)


SLOW_CONFIG = """\
providers:
  - name: mock
    type: openai
    base_url: {url}
    model: fixed-800
    max_retries: 0
    timeout_ms: 30000
"""


def start_mock(test):
    mock = subprocess.Popen([MOCK, "--port", "0"], stdout=subprocess.PIPE, text=True)
    test.addCleanup(mock.stdout.close)
    test.addCleanup(mock.wait, 10)
    test.addCleanup(mock.terminate)
    line = mock.stdout.readline()
    test.assertTrue(line.startswith("PORT "), line)
    return "http://127.0.0.1:%d/v1" % int(line.split()[1])


def loaded_copies(pid, name):
    """The distinct private copies of plugin file @name mapped in process @pid."""
    inodes = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == "/memfd:moad-plugin:" + name:
                inodes.add(fields[4])
    return inodes


class ReloadRebuilt(unittest.TestCase):
    """A plugin rebuilt in place is loaded afresh by a reload, while the
    requests already running on the old build finish on it."""

    def test_rebuild_in_place_reload_under_load(self):
        tmp = tempfile.mkdtemp(prefix="moad-rebuild-")
        self.addCleanup(shutil.rmtree, tmp, True)
        so = os.path.join(tmp, "versioned.so")
        build_versioned(so, "1.0.0")
        agents = os.path.join(tmp, "agents.d")
        os.mkdir(agents)
        with open(os.path.join(agents, "versioned.yaml"), "w") as f:
            f.write("name: versioned\nplugin: %s\nprovider: mock\nmodel: fixed-800\n" % so)
        d = Daemon(config=SLOW_CONFIG.format(url=start_mock(self)), agents_dir=agents)
        results = []  # (version the request was sent under, status, body)
        lock = threading.Lock()
        stop = threading.Event()
        current = ["1.0.0"]

        def client():
            while not stop.is_set():
                sent_under = current[0]
                try:
                    st, _, data = d.chat("hello there", model="versioned")
                except OSError as e:
                    st, data = None, str(e).encode()
                with lock:
                    results.append((sent_under, st, data))

        def version_of(data):
            text = json.loads(data)["choices"][0]["message"]["content"]
            return text.rsplit("[versioned ", 1)[1].rstrip("]") if "[versioned " in text else None

        def agents_version():
            st, _, j = d.json("GET", "/v1/moa/agents")
            self.assertEqual(st, 200)
            return {a["name"]: a["version"] for a in j["agents"]}["versioned"]

        def wait_inflight():
            end = time.time() + 30
            while d.json("GET", "/v1/moa/status")[2]["inflight"] < 1:
                self.assertLess(time.time(), end, "no request in flight")
                time.sleep(0.01)

        def wait_answered(version):
            end = time.time() + 30
            while not any(v == version for v, _, _ in list(results)):
                self.assertLess(time.time(), end, "no answer for a request sent under " + version)
                time.sleep(0.01)

        threads = [threading.Thread(target=client) for _ in range(3)]
        try:
            self.assertEqual(agents_version(), "1.0.0")
            for t in threads:
                t.start()
            # 1: rebuilt by the compiler (a new file under the same name)
            wait_inflight()
            build_versioned(so, "2.0.0")
            st, _, j = d.json("POST", "/v1/moa/reload")
            self.assertEqual((st, j["status"], j["refused"]), (200, "reloaded", []), j)
            current[0] = "2.0.0"
            self.assertEqual(agents_version(), "2.0.0")
            # 2: overwritten in place (cp: same inode, truncated and rewritten)
            # while requests are running on 2.0.0
            build_versioned(os.path.join(tmp, "new.so"), "3.0.0")
            wait_answered("2.0.0")
            wait_inflight()
            with open(os.path.join(tmp, "new.so"), "rb") as src, open(so, "r+b") as dst:
                dst.truncate(0)
                shutil.copyfileobj(src, dst)
            st, _, j = d.json("POST", "/v1/moa/reload")
            self.assertEqual((st, j["status"]), (200, "reloaded"), j)
            current[0] = "3.0.0"
            self.assertEqual(agents_version(), "3.0.0")
            wait_answered("3.0.0")
            stop.set()
            for t in threads:
                t.join(60)
            # the old builds were dlclosed with their last request: one copy is mapped
            end = time.time() + 10
            while len(loaded_copies(d.proc.pid, "versioned.so")) != 1:
                self.assertLess(time.time(), end, loaded_copies(d.proc.pid, "versioned.so"))
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                if t.is_alive() or t.ident:
                    t.join(60)
            rc = d.stop()
            log = d.read_log()
            d.cleanup()
        self.assertEqual(rc, 0, log[-3000:])
        for bad in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
            self.assertNotIn(bad, log)
        failed = [(v, st, data[:200]) for v, st, data in results if st != 200]
        self.assertEqual(failed, [])
        seen = {}
        for sent_under, _, data in results:
            got = version_of(data)
            seen.setdefault(sent_under, set()).add(got)
        # a request sent after a reload answered gets the new build, one sent
        # before it may finish on the old one: never an older or unknown one
        order = ["1.0.0", "2.0.0", "3.0.0"]
        for sent_under, got in seen.items():
            for v in got:
                self.assertIn(v, order, (sent_under, got))
                self.assertGreaterEqual(order.index(v), order.index(sent_under), (sent_under, got))
        self.assertEqual(seen.get("3.0.0"), {"3.0.0"}, seen)
        self.assertIn("2.0.0", seen.get("2.0.0", set()), seen)
        # the requests in flight during the first reload finished on 1.0.0
        self.assertIn("1.0.0", seen.get("1.0.0", set()), seen)
        self.assertIn("agent versioned: loaded plugin versioned 2.0.0", log)
        self.assertIn("agent versioned: loaded plugin versioned 3.0.0", log)


if __name__ == "__main__":
    unittest.main()
