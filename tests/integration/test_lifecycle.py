"""Daemon lifecycle: start with no config, socket handling, graceful
shutdown, config checking."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from moadtest import MOAD, Daemon


class Lifecycle(unittest.TestCase):
    def test_sigterm_removes_socket_and_exits_zero(self):
        d = Daemon()
        try:
            self.assertTrue(os.path.exists(d.socket))
            mode = os.stat(d.socket).st_mode & 0o777
            self.assertEqual(mode, 0o660)
            self.assertEqual(d.stop(signal.SIGTERM), 0)
            self.assertFalse(os.path.exists(d.socket))
            self.assertIn("stopped", d.read_log())
        finally:
            d.cleanup()

    def test_sigint(self):
        d = Daemon()
        try:
            self.assertEqual(d.stop(signal.SIGINT), 0)
            self.assertFalse(os.path.exists(d.socket))
        finally:
            d.cleanup()

    def test_creates_socket_directory(self):
        base = tempfile.mkdtemp(prefix="moad-test-")
        sock = os.path.join(base, "run", "moad", "moad.sock")
        d = Daemon(socket_path=sock)
        try:
            self.assertTrue(os.path.exists(sock))
        finally:
            d.cleanup()

    def test_second_instance_refused_and_stale_socket_replaced(self):
        d = Daemon()
        try:
            p = subprocess.run([MOAD, "--socket", d.socket, "--state-dir", d.state], capture_output=True,
                               text=True, timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("already listening", p.stderr)
            # the first one still serves
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
        finally:
            d.stop(signal.SIGKILL)  # leaves a stale socket file behind
        self.assertTrue(os.path.exists(d.socket))
        d2 = Daemon()
        d2.stop()
        d2.cleanup()
        # a fresh daemon on the stale path works
        d3 = Daemon(socket_path=d.socket)
        try:
            self.assertEqual(d3.request("GET", "/healthz")[0], 200)
        finally:
            d3.cleanup()
            d.cleanup()

    def test_shutdown_finishes_inflight_streams(self):
        # Several streamed requests on open connections, then SIGTERM: each
        # one already accepted completes with [DONE], new connections fail.
        d = Daemon()
        try:
            results = []

            def worker():
                st, _, data = d.chat("Explain amortisation of a mortgage", stream=True)
                results.append((st, data.endswith(b"data: [DONE]\n\n")))

            threads = [threading.Thread(target=worker) for _ in range(8)]
            for t in threads:
                t.start()
            time.sleep(0.05)
            d.proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(30)
            self.assertEqual(d.proc.wait(30), 0)
            # Requests either completed fully or were never accepted (connect failed
            # raises in the thread): none may be cut off mid-answer.
            for st, done in results:
                self.assertEqual(st, 200)
                self.assertTrue(done)
        finally:
            d.cleanup()


class CheckConfig(unittest.TestCase):
    def run_check(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            return subprocess.run([MOAD, "--check-config", "--config", f.name], capture_output=True, text=True,
                                  timeout=30), f.name
        finally:
            pass

    def test_valid(self):
        p, path = self.run_check("log_level: debug\nrouter:\n  top_k: 2\n")
        os.unlink(path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK", p.stdout)

    def test_invalid_names_file_line_column(self):
        p, path = self.run_check("log_level: debug\nlimits:\n  max_bodyy: 3\n")
        os.unlink(path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s:3:3:" % path, p.stderr)
        self.assertIn("max_bodyy", p.stderr)

    def test_no_config_at_all(self):
        p = subprocess.run([MOAD, "--check-config"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_bad_start_exits_nonzero(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("providers: 5\n")
        p = subprocess.run([MOAD, "--config", f.name, "--socket", f.name + ".sock"], capture_output=True,
                           text=True, timeout=30)
        os.unlink(f.name)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f.name + ":1:", p.stderr)
        self.assertFalse(os.path.exists(f.name + ".sock"))

    def test_usage_error(self):
        p = subprocess.run([MOAD, "--bogus"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()
