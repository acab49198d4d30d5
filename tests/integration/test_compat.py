"""Compatibility with an unmodified official OpenAI client: the OpenAI Node
SDK (`openai` on npm, the exact version pinned in tests/compat/package.json)
runs tests/compat/openai-sdk.mjs against the real daemon on a TCP listener
(models, plain and streamed completions, headers, error classes, extra body
fields, keep-alive, and the Batch API: files.create, batches.create,
retrieve, list and cancel, files.content and files.delete). The test itself
stays offline: the SDK is installed beforehand by `npm ci` in tests/compat
(.ci/run installs Debian's nodejs and npm and does it). When Node.js or the
SDK is missing the test is skipped with the reason on a developer's machine
and fails under CI (CI=true)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest

from moadtest import SRC, Daemon, DaemonTestCase, cannot_run

COMPAT = os.path.join(SRC, "tests", "compat")
SCRIPT = os.path.join(COMPAT, "openai-sdk.mjs")
SCRIPT_TIMEOUT = 300


def run_bounded(cmd, timeout, **kw):
    """subprocess.run in its own process group, all of which is killed when
    it overruns `timeout`. Returns (rc, output), rc
    None on timeout."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out


def pinned_version():
    with open(os.path.join(COMPAT, "package.json")) as f:
        return json.load(f)["dependencies"]["openai"]


def installed_version():
    try:
        with open(os.path.join(COMPAT, "node_modules", "openai", "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_sdk():
    """Returns None when Node.js >= 18 and the pinned SDK are installed in
    tests/compat/node_modules, else the reason to skip."""
    node = shutil.which("node")
    if not node:
        return "node (Node.js >= 18) not found in PATH"
    rc, out = run_bounded([node, "-p", "process.versions.node.split('.')[0]"], 30)
    if rc != 0 or not out.strip().isdigit() or int(out.strip()) < 18:
        return "Node.js >= 18 needed by the openai SDK, have %r" % out.strip()
    want, have = pinned_version(), installed_version()
    if have != want:
        return "openai %s not installed in %s/node_modules (have %s): run `npm ci` there" % (want, COMPAT, have)
    return None


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class OpenAINodeSDK(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        why = ensure_sdk()
        if why:
            cannot_run(why)
        # The port may be taken between free_port() and moad's bind: retry.
        for attempt in range(3):
            cls.port = free_port()
            try:
                # one batch line at a time: the cancel test's batch must
                # still be running when its cancel arrives, however loaded
                # the machine
                cls.d = Daemon(config='listen:\n  tcp: "127.0.0.1:%d"\njobs:\n  concurrency: 1\n' % cls.port)
                return
            except RuntimeError as e:
                if attempt == 2 or "in use" not in str(e):
                    raise
                time.sleep(0.2)

    def test_openai_node_sdk(self):
        """Every check of openai-sdk.mjs holds against the real daemon on the
        builtin provider, over TCP, with the pinned SDK."""
        env = dict(os.environ)
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
                  "LD_PRELOAD", "NODE_OPTIONS", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(k, None)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
        rc, out = run_bounded(["node", SCRIPT, "http://127.0.0.1:%d/v1" % self.port, "moa"],
                              SCRIPT_TIMEOUT, cwd=COMPAT, env=env)
        print(out, end="", flush=True)
        self.assertIsNotNone(rc, "openai-sdk.mjs did not finish in %d s:\n%s" % (SCRIPT_TIMEOUT, out))
        self.assertEqual(rc, 0, "openai-sdk.mjs failed:\n%s\nmoad log tail:\n%s" % (out, self.d.read_log()[-3000:]))
        self.assertIn("checks passed", out)


if __name__ == "__main__":
    unittest.main()
