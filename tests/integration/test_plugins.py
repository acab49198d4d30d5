"""Plugins in the running daemon: an out-of-tree plugin built with the
documented command line and added through agents.d, and broken plugins that
are refused while the daemon keeps serving with the others."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from moadtest import BUILD, SRC, Daemon

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


if __name__ == "__main__":
    unittest.main()
