"""Routing as a user meets it, through the real daemon and /v1/moa/route:
knowledge steers routing (the licence texts every Debian system ships), a
YAML-only expert routes its own questions and not other domains' uses of
its words, other senses and other languages, and what `moa` answers with."""
import os
import shutil
import tempfile
import time
import unittest

from moadtest import SRC, Daemon

AGENTS = os.path.join(SRC, "agents.d")
LICENSES = "/usr/share/common-licenses"
# The vocabulary statistics are re-read at most every 2 s after a change.
VOCAB_REFRESH = 2.2

SAAS = ("We run a modified GPLv3 app purely as a SaaS backend. Users only talk to it over HTTP and "
        "never receive a copy. Does that trigger the obligation to hand out our changes?")


def route(d, query):
    st, _, j = d.json("POST", "/v1/moa/route", {"query": query})
    assert st == 200, j
    return j


class Knowledge(unittest.TestCase):
    """The licence texts of package base-files ingested into legal."""

    @classmethod
    def setUpClass(cls):
        # base-files is essential on Debian: a missing directory is a broken
        # machine, not a reason to skip
        if not os.path.isdir(LICENSES):
            raise RuntimeError("%s is missing (package base-files)" % LICENSES)
        cls.d = Daemon(agents_dir=AGENTS)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()

    def test_saas_question_reaches_legal(self):
        before = route(self.d, SAAS)
        for name in ("GPL-3", "GPL-2", "LGPL-3", "Apache-2.0", "MPL-2.0"):
            with open(os.path.join(LICENSES, name), encoding="utf-8") as f:
                st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                                       {"title": name, "text": f.read(), "source": os.path.join(LICENSES, name)})
            self.assertIn(st, (200, 201, 202), j)
        time.sleep(VOCAB_REFRESH)
        after = route(self.d, SAAS)
        self.assertIn("legal", after["selected"])
        self.assertNotIn("finance", after["selected"])  # "obligation" is a duty here, not a bond
        legal = {a["name"]: a for a in after["agents"]}["legal"]
        self.assertGreater(legal["kb_score"], 0.2)
        self.assertIn("documents:", legal["kb_terms"])
        # a bigger legal knowledge base does not pull other domains' questions
        for q, agent in (("How do I copy a file in Python and keep its permissions?", "code"),
                         ("Is ibuprofen safe with blood-pressure medication?", "medical"),
                         ("How much should I save each month for retirement?", "finance")):
            self.assertEqual(route(self.d, q)["selected"], [agent], q)
        self.assertIn("legal", before["selected"])


SECURITY_YAML = """\
name: security
description: IT security - TLS, certificates, authentication, vulnerabilities, hardening
weight: 1.0
knowledge:
  - {knowledge}
examples:
  - How do I renew an expired TLS certificate on nginx?
  - Is MD5 still acceptable for hashing passwords?
  - What is a CSRF token and do I need one for a JSON API?
  - How should I store API keys for a web service?
  - Which cipher suites should a modern HTTPS server offer?
  - How do I set up two-factor authentication for SSH logins?
  - What does CVE-2021-44228 mean for my Java application?
  - Our server was scanned by someone, how do I find out if we were breached?
  - How do I rotate the signing key of our JWT tokens without logging everybody out?
  - What is certificate pinning and when is it a bad idea?
  - wie schütze ich meinen Webserver gegen Brute-Force-Angriffe?
  - comment configurer HSTS sur apache
  - Our certificate chain is incomplete and some clients refuse the connection
  - certbot renewal fails with a challenge error
  - How often should we rotate TLS certificates and private keys?
  - Which password hashing algorithm should a new web app use?
  - Is bcrypt with cost 10 still enough?
  - Should we salt and pepper stored passwords?
  - Do single-page apps need CSRF protection when they use cookies?
  - How do I set SameSite on session cookies to stop cross-site requests?
  - What is the difference between authentication and authorization?
  - How do I run a penetration test against our own login page?
  - Someone keeps trying to log in to our admin panel, how do I block them?
  - Which security headers should every website send?
  - Let's Encrypt says the domain validation failed
  - The browser says the site's certificate is not trusted
  - Our HTTPS certificate runs out next week, what do we have to do?
  - How do I protect my login form against cross-site request forgery?
  - Are forms that post to our own server safe from forged requests?
  - How do I find out which of our dependencies have known vulnerabilities?
  - Should our internal services talk to each other over mutual TLS?
  - How do I stop SQL injection in a login form?
  - What is a reasonable password policy for employees?
  - Our website was defaced, what do we do first?
"""

SECURITY_DOC = """\
# TLS certificates

A TLS certificate binds a public key to a host name and is signed by a certificate authority.
Certificates expire; renew them before the notAfter date, for example with an ACME client such
as certbot, and reload the web server so that it serves the new chain.

# Password storage

Store passwords with a slow, salted password hash such as Argon2id, scrypt or bcrypt. Fast
hashes such as MD5 or SHA-1 are unsuitable because attackers can try billions of guesses per second.

# Cross-site request forgery

A CSRF token is a secret value tied to the session that a form must send back; APIs that use
bearer tokens in headers instead of cookies are not exposed to CSRF in the same way.
"""


class YamlOnlyExpert(unittest.TestCase):
    """An agent file with no plugin: its examples and knowledge route to it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="moad-routing-")
        agents = os.path.join(cls.tmp, "agents.d")
        shutil.copytree(AGENTS, agents)
        know = os.path.join(cls.tmp, "security-knowledge")
        os.makedirs(know)
        with open(os.path.join(know, "security.md"), "w") as f:
            f.write(SECURITY_DOC)
        with open(os.path.join(agents, "security.yaml"), "w") as f:
            f.write(SECURITY_YAML.format(knowledge=know))
        cls.d = Daemon(agents_dir=agents)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_listed_as_generic(self):
        st, _, j = self.d.json("GET", "/v1/moa/agents")
        self.assertEqual(st, 200)
        sec = {a["name"]: a for a in j["agents"]}["security"]
        self.assertEqual(sec["plugin"], "generic")
        self.assertEqual(sec["documents"], 1)

    def test_routes_its_questions(self):
        for q in ("My Let's Encrypt certificate expired and browsers show a warning, how do I renew it?",
                  "bcrypt or argon2 for storing user passwords?",
                  "Do I need CSRF protection on a form that posts to my own backend?"):
            j = route(self.d, q)
            self.assertIn("security", j["selected"], (q, j["agents"]))

    def test_not_other_senses_of_security(self):
        for q, agent in (("Can my landlord keep my security deposit after I moved out?", "legal"),
                         ("What does the UN Security Council do?", "general"),
                         ("How many years do I need to pay into social security to get a pension?", "finance")):
            j = route(self.d, q)
            self.assertNotIn("security", j["selected"], (q, j["agents"]))
            self.assertIn(agent, j["selected"], (q, j["agents"]))

    def test_answer_comes_from_its_knowledge(self):
        st, _, data = self.d.chat("How do I renew an expired TLS certificate?", model="security")
        self.assertEqual(st, 200, data)
        self.assertIn(b"certbot", data)


class Languages(unittest.TestCase):
    """German, French and Spanish, typos and terse queries with the shipped agents."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(agents_dir=AGENTS)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()

    def test_languages_and_typos(self):
        for q, agent in (("Mein Vermieter will die Kaution nicht zurückzahlen, was kann ich tun?", "legal"),
                         ("J'ai de la fièvre depuis trois jours, dois-je consulter un médecin ?", "medical"),
                         ("¿Cuánto debería ahorrar cada mes para mi jubilación?", "finance"),
                         ("ibuprofin dose for a 6 year old", "medical"),
                         ("my landord wont return my depost", "legal"),
                         ("segfault after free in my C program", "code")):
            j = route(self.d, q)
            self.assertEqual(j["selected"], [agent], (q, j["agents"]))

    def test_everyday_questions_stay_general(self):
        for q in ("Is it a legal move to castle after your king has moved?",
                  "What should I feed a pet python?",
                  "How long do I boil an egg for a runny yolk?"):
            j = route(self.d, q)
            self.assertEqual(j["selected"], ["general"], (q, j["agents"]))
            self.assertTrue({a["name"]: a for a in j["agents"]}["general"]["fallback"])


if __name__ == "__main__":
    unittest.main()
