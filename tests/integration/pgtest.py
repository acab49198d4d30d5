"""pgtest.py — a private PostgreSQL server for the knowledge-backend tests:
initdb and pg_ctl in a fresh temporary directory, listening only on a Unix
socket there (listen_addresses=''), with password authentication
(scram-sha-256) so moad's knowledge.password_file is exercised. initdb
refuses to run as root: as root the server runs as an unprivileged user
(MOAD_TEST_PG_USER, default 'nobody') through runuser, in a directory that
user can reach. Without the server binaries the tests cannot run:
moadtest.cannot_run() skips them loudly, or fails under CI."""
import atexit
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time

from moadtest import cannot_run


def bindir():
    """The newest /usr/lib/postgresql/N/bin with initdb and pg_ctl (or
    MOAD_TEST_PG_BINDIR), None if there is none."""
    env = os.environ.get("MOAD_TEST_PG_BINDIR")
    dirs = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                    key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0,
                                    reverse=True)
    for d in dirs:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "psql")):
            return d
    return None


class PgServer:
    """One postgres process; stop() (also run at exit) removes everything."""

    SUPERUSER = "moa"

    def __init__(self):
        self.bin = bindir()
        if not self.bin:
            cannot_run("no PostgreSQL server binaries (initdb, pg_ctl, psql under /usr/lib/postgresql/*/bin; "
                       "install the 'postgresql' package, or set MOAD_TEST_PG_BINDIR)")
        self.runas = []
        owner = None
        if os.geteuid() == 0:
            name = os.environ.get("MOAD_TEST_PG_USER", "nobody")
            if not shutil.which("runuser"):
                cannot_run("running as root and runuser (util-linux) is missing: initdb refuses root")
            try:
                owner = pwd.getpwnam(name)
            except KeyError:
                cannot_run("running as root and there is no user %r to run PostgreSQL as "
                           "(initdb refuses root; set MOAD_TEST_PG_USER)" % name)
            self.runas = ["runuser", "-u", name, "--"]
        # /tmp, mode 755: the clone may be in root's mode-700 home, which
        # the server's user could not enter
        self.dir = tempfile.mkdtemp(prefix="moad-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.stopped = False
        atexit.register(self.stop)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.mkdir(self.sock, 0o755)
        self.password = secrets.token_hex(16)
        pwfile = os.path.join(self.dir, "initdb-pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chmod(pwfile, 0o644)
        if owner:
            os.chown(self.sock, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self.log = os.path.join(self.dir, "postgres.log")
        open(self.log, "w").close()
        if owner:
            os.chown(self.log, owner.pw_uid, owner.pw_gid)
            # initdb creates the data directory itself, inside ours
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", self.SUPERUSER,
                   "--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8", "--no-locale", "-N"])
        os.unlink(pwfile)
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                   "-o", "-c listen_addresses='' -c unix_socket_directories='%s' -c fsync=off "
                         "-c max_connections=200" % self.sock, "start"])
        # a password file as systemd's LoadCredential= would give moad
        self.password_file = os.path.join(self.dir, "moad-pg-password")
        with open(self.password_file, "w") as f:
            f.write(self.password + "\n")
        os.chmod(self.password_file, 0o600)

    def _run(self, cmd, **kw):
        p = subprocess.run(self.runas + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=120, **kw)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout, self.server_log()))
        return p.stdout

    def server_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def conninfo(self, dbname="postgres"):
        return "host=%s port=5432 dbname=%s user=%s" % (self.sock, dbname, self.SUPERUSER)

    def psql(self, sql, dbname="postgres"):
        """Runs @sql as the superuser; returns psql's unaligned output."""
        env = dict(os.environ, PGPASSWORD=self.password)
        p = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.conninfo(dbname), "-c", sql], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=60, env=env)
        if p.returncode != 0:
            raise RuntimeError("psql %r failed:\n%s" % (sql, p.stdout))
        return p.stdout.strip()

    def createdb(self, name):
        self.psql("CREATE DATABASE %s" % name)
        return self.conninfo(name)

    def config(self, dbname, extra=""):
        """moad.yaml text for the postgresql backend on database @dbname."""
        return ("knowledge:\n  backend: postgresql\n  conninfo: \"%s\"\n  password_file: %s\n"
                "  connect_timeout_s: 3\n  statement_timeout_ms: 10000\n%s"
                % (self.conninfo(dbname), self.password_file, extra))

    def pg_ctl(self, action, mode="fast"):
        """'stop' (shutdown @mode: 'fast', or 'immediate' as when the server
        is killed) or 'start' the server (for the fault cases)."""
        if action == "stop":
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w", "-m", mode, "stop"])
        else:
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                       "-o", "-c listen_addresses='' -c unix_socket_directories='%s' -c fsync=off "
                             "-c max_connections=200" % self.sock, "start"])

    def lock_chunks(self, dbname, table="moa_kb_chunks"):
        """A session holding an ACCESS EXCLUSIVE lock on @table until
        release(): every search waits for it. Returns the psql process once
        the lock is granted."""
        env = dict(os.environ, PGPASSWORD=self.password)
        p = subprocess.Popen([os.path.join(self.bin, "psql"), "-X", "-q", "-d", self.conninfo(dbname)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, env=env)
        p.stdin.write("BEGIN;\nLOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n" % table)
        p.stdin.flush()
        end = time.time() + 30
        while time.time() < end:
            if self.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                         "WHERE c.relname = '%s' AND l.mode = 'AccessExclusiveLock' AND l.granted" % table,
                         dbname) == "1":
                return p
            time.sleep(0.05)
        p.kill()
        raise RuntimeError("the lock was never taken: " + p.communicate()[0])

    @staticmethod
    def release(p):
        """Ends a lock_chunks() session (its transaction commits)."""
        try:
            p.communicate("COMMIT;\n", timeout=30)
        except (OSError, ValueError):
            pass  # the server went away with it
        if p.poll() is None:
            p.kill()
            p.wait()

    def waiting_searches(self, dbname):
        """moad's knowledge searches (the statement kb_pg_search_sql)
        waiting for a lock on @dbname now."""
        return int(self.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND "
                             "application_name = 'moad' AND wait_event_type = 'Lock' AND "
                             "query LIKE 'WITH tl AS (SELECT x.lexeme, u.df FROM%%'" % dbname))

    def wait_searches(self, dbname, n=1, timeout=30):
        """Waits until @n of moad's searches wait for the lock."""
        end = time.time() + timeout
        while time.time() < end:
            if self.waiting_searches(dbname) >= n:
                return
            time.sleep(0.05)
        raise RuntimeError("no search of moad waited for the lock on %s" % dbname)

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        subprocess.run(self.runas + [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w", "-m",
                                     "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
