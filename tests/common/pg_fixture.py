# SPDX-License-Identifier: Apache-2.0
"""A PostgreSQL 15 server of the tests' own: `initdb` in a temporary directory, `postgres`
listening on a Unix socket in that directory only (listen_addresses = ''; no TCP, no system
cluster), stopped and removed afterwards.

PostgreSQL refuses to run as root: as root the binaries run as the `postgres` user through
runuser(1); as any other user they run as that user. They are called by their full path
(scripts/deps installs postgresql-15). Authentication is `trust` on the socket, which only
this process tree can reach (the directory is mode 0700, owned by the server's user).

As a library (the ha suite):   pg = Postgres(); pg.start(); pg.uri("db"); pg.stop()
As a wrapper (the store suite's PostgreSQL runs):
    pg_fixture.py run -- COMMAND ARGS...
starts a server, creates the database `keymgr_test`, runs COMMAND with
KEYMGR_TEST_PG_URI=postgresql://postgres@/keymgr_test?host=SOCKETDIR in its environment,
stops the server and exits with COMMAND's status.
"""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


class PostgresError(Exception):
    pass


class Postgres:
    def __init__(self, base=None):
        self.base = base
        self.dir = None
        self.proc = None
        self.log = None

    def _as_server_user(self, argv):
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _chown(self, path):
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def socket_dir(self):
        return os.path.join(self.dir, "run")

    def start(self):
        """initdb (first call only), then start the server and wait until it accepts."""
        if self.dir is None:
            if not os.path.exists(os.path.join(PG_BIN, "postgres")):
                raise PostgresError(PG_BIN + "/postgres is missing: run scripts/deps")
            self.dir = tempfile.mkdtemp(prefix="keymgr-pg-", dir=self.base)
            os.chmod(self.dir, 0o755)   # the server user must reach data/ and run/
            os.mkdir(self.data, 0o700)
            os.mkdir(self.socket_dir, 0o700)
            self._chown(self.data)
            self._chown(self.socket_dir)
            out = subprocess.run(
                self._as_server_user([PG_BIN + "/initdb", "-D", self.data, "-U", "postgres",
                                      "-A", "trust", "-E", "UTF8", "--no-sync",
                                      "--locale=C.UTF-8"]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/")
            if out.returncode != 0:
                raise PostgresError("initdb failed:\n" + out.stdout)
        self.log = open(os.path.join(self.dir, "postgres.log"), "ab")
        # fsync off: the tests' server dies with its directory; transactions, locks and
        # the clock behave as with fsync on.
        self.proc = subprocess.Popen(
            self._as_server_user([PG_BIN + "/postgres", "-D", self.data,
                                  "-c", "listen_addresses=",
                                  "-c", "unix_socket_directories=" + self.socket_dir,
                                  "-c", "fsync=off", "-c", "max_connections=100",
                                  "-c", "shared_buffers=16MB"]),
            stdout=self.log, stderr=subprocess.STDOUT, cwd="/", start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PostgresError("postgres exited with %d:\n%s" %
                                    (self.proc.returncode, self.server_log()))
            r = subprocess.run([PG_BIN + "/pg_isready", "-q", "-h", self.socket_dir,
                                "-U", "postgres"], cwd="/")
            if r.returncode == 0:
                return
            time.sleep(0.05)
        raise PostgresError("postgres did not accept connections:\n" + self.server_log())

    def server_log(self):
        try:
            with open(os.path.join(self.dir, "postgres.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def psql(self, sql, db="postgres"):
        """Runs sql through psql as the superuser; returns its output (unaligned, no header)."""
        out = subprocess.run([PG_BIN + "/psql", "-X", "-q", "-A", "-t", "-v",
                              "ON_ERROR_STOP=1", "-h", self.socket_dir, "-U", "postgres",
                              "-d", db, "-c", sql],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        if out.returncode != 0:
            raise PostgresError("psql %r: %s" % (sql, out.stderr.strip()))
        return out.stdout

    def create_db(self, name):
        self.psql('CREATE DATABASE "%s"' % name)

    def uri(self, db, schema=None):
        u = "postgresql://postgres@/%s?host=%s" % (db, self.socket_dir)
        if schema:
            u += "&options=-csearch_path%%3D%s" % schema
        return u

    def stop(self, mode=signal.SIGINT):
        """Stops the server (SIGINT: fast shutdown; SIGKILL: a crash). Keeps the data."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # The server runs as another user: signal it through its session (runuser).
            try:
                os.killpg(self.proc.pid, mode)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def main(argv):
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print("usage: pg_fixture.py run -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    pg = Postgres(os.environ.get("TMPDIR") or None)
    try:
        pg.start()
        pg.create_db("keymgr_test")
        env = dict(os.environ, KEYMGR_TEST_PG_URI=pg.uri("keymgr_test"))
        rc = subprocess.run(argv[2:], env=env).returncode
        if rc != 0:
            print("pg_fixture: server log (tail):\n" + pg.server_log(), file=sys.stderr)
        return rc
    finally:
        pg.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
