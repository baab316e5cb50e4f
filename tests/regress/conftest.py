"""
conftest.py: start the real relayd for each test case, on its own
kernel-chosen loopback port with a private state directory, key file,
secret file and users file; stop it with SIGTERM and require exit status 0.
relayd's stderr is collected all along and attached to the report of any
case that fails.

Until build/relayd exists every case that needs it is skipped, with the
reason; once it exists nothing is skipped.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest
from cryptography.fernet import Fernet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import relayproto  # noqa: E402
from relayproto import WAIT, Client, md5_hex  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("RELAY_BUILD") or \
    os.path.normpath(os.path.join(HERE, "..", "..", "build"))
RELAYD = os.path.join(BUILD, "relayd")
SECRET = "5678"
START_WAIT = 30.0 * relayproto.SCALE
# A command relayd runs under (make valgrind: valgrind and its options),
# split like a shell would; none by default.
WRAPPER = shlex.split(os.environ.get("RELAYD_WRAPPER", ""))

# name -> password; a UTF-8 password and names with every USER character.
USERS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "d.e-f_9": "pässwörd ✓",
}

SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                       r"runtime error:|ThreadSanitizer|"
                       r"==[0-9]+== ERROR SUMMARY: [1-9]")
DAEMON_FIXTURES = ("daemon", "daemon_factory")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a slow case (runs in make "
                            "check too)")
    config.addinivalue_line("markers", "load: a load case with many "
                            "clients (runs in make check too)")
    config.addinivalue_line("markers", "relayd(options=None, users=None): "
                            "options (-o name=value) and users for the "
                            "daemon fixture")


def pytest_collection_modifyitems(config, items):
    if os.access(RELAYD, os.X_OK):
        return
    skip = pytest.mark.skip(reason="%s is not built yet (run make; "
                            "RELAY_BUILD=%s)" % (RELAYD, BUILD))
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in
               DAEMON_FIXTURES):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in getattr(item, "_relayd_daemons", ()):
            rep.sections.append(("relayd stderr (%s)" % d.name,
                                 d.log_text() or "(nothing)"))


def write_users(path, users, extra=""):
    """A users file NAME:MD5HEX, mode 0600, replaced atomically."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# relay users (test)\n\n")
        for name, pw in users.items():
            f.write("%s:%s\n" % (name, md5_hex(pw)))
        f.write(extra)
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


class Daemon:
    """One relayd: its files, its process, its stderr."""

    def __init__(self, workdir, name="relayd", users=None, options=None,
                 secret=SECRET):
        self.name = name
        self.dir = str(workdir)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.state, mode=0o700, exist_ok=True)
        self.keyfile = os.path.join(self.dir, "key")
        self.secretfile = os.path.join(self.dir, "secret")
        self.usersfile = os.path.join(self.dir, "users")
        self.key = Fernet.generate_key()
        self.secret = secret
        self.users = dict(USERS if users is None else users)
        self.options = dict(options or {})
        with open(self.keyfile, "wb") as f:
            f.write(self.key + b"\n")
        os.chmod(self.keyfile, 0o600)
        with open(self.secretfile, "w") as f:
            f.write(secret + "\n")
        os.chmod(self.secretfile, 0o600)
        write_users(self.usersfile, self.users)
        self.proc = None
        self.port = None
        self.lines = []
        self.cond = threading.Condition()
        self.clients = []
        self.runs = 0

    # ---- process ----

    def argv(self, options=None):
        opts = dict(self.options)
        opts.update(options or {})
        argv = [RELAYD, "-d", "-l", "127.0.0.1", "-p", "0", "-s", self.state,
                "-k", self.keyfile, "-S", self.secretfile, "-u",
                self.usersfile]
        for k, v in opts.items():
            argv += ["-o", "%s=%s" % (k, v)]
        return argv

    def spawn(self, argv):
        """Run argv with stderr drained into self.lines by a thread."""
        self.runs += 1
        with self.cond:
            self.lines.append("---- run %d: %s\n" % (self.runs,
                                                      " ".join(argv)))
            self.mark = len(self.lines)
        if WRAPPER and argv and argv[0] == RELAYD:
            argv = WRAPPER + list(argv)
        # Its own process group, so that its workers can be found (and,
        # after a test's kill -9, ended) by that group's id.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.drainer = threading.Thread(target=self._drain,
                                        args=(self.proc.stderr,), daemon=True)
        self.drainer.start()
        return self.proc

    def _drain(self, f):
        for raw in iter(f.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.cond.notify_all()
        f.close()
        with self.cond:
            self.cond.notify_all()

    def start(self, options=None):
        assert self.proc is None or self.proc.poll() is not None
        self.spawn(self.argv(options))
        m = self.wait_log(r"relayd: listening on 127\.0\.0\.1 port "
                          r"([0-9]+)\n", START_WAIT, since=self.mark)
        self.port = int(m.group(1))
        return self

    def wait_log(self, pattern, timeout=None, since=0):
        """The first stderr line from index since matching pattern."""
        rx = re.compile(pattern)
        until = time.monotonic() + (WAIT if timeout is None else timeout)
        i = since
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if not self.drainer.is_alive() and i == len(self.lines):
                    raise AssertionError(
                        "relayd closed stderr (status %s) without logging "
                        "%r" % (self.proc.poll(), pattern))
                left = until - time.monotonic()
                if left <= 0:
                    raise AssertionError("relayd never logged %r" % pattern)
                self.cond.wait(min(left, 0.2))

    def log_text(self):
        with self.cond:
            return "".join(self.lines)

    def log_since(self, mark):
        with self.cond:
            return "".join(self.lines[mark:])

    def log_mark(self):
        with self.cond:
            return len(self.lines)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=None):
        try:
            return self.proc.wait(WAIT if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("relayd did not exit before the deadline "
                                 "(killed)")

    def stop(self, sig=None):
        """Signal, wait (deadline), require exit 0, end stray workers."""
        sig = signal.SIGTERM if sig is None else sig
        self.signal(sig)
        rc = self.wait_exit()
        self.reap_group()
        assert rc == 0, "relayd exited with status %d after %s" % (rc, sig)
        return rc

    def kill9(self):
        """kill -9 of every process of the daemon (hub and workers)."""
        pids = self.group_pids()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(WAIT)
        self.reap_group()

    def group_pids(self):
        """Live (not zombie) processes in the daemon's process group."""
        pids = []
        if self.proc is None:
            return pids
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            if fields[0] != "Z" and int(fields[2]) == self.proc.pid:
                pids.append(int(d))
        return pids

    def worker_pids(self):
        """The workers: the group without the hub and the spawner, which
        is the hub's child (the workers are the spawner's)."""
        out = []
        for p in self.group_pids():
            try:
                with open("/proc/%d/stat" % p) as f:
                    st = f.read()
            except OSError:
                continue
            ppid = int(st[st.rfind(")") + 2:].split()[1])
            if p != self.proc.pid and ppid != self.proc.pid:
                out.append(p)
        return out

    def reap_group(self, timeout=5.0):
        """Give workers a moment to end on their own, then end them."""
        until = time.monotonic() + timeout
        while self.group_pids() and time.monotonic() < until:
            time.sleep(0.05)
        left = self.group_pids()
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left

    def sanitizer_errors(self):
        """Sanitizer reports, and workers the sandbox killed (signal 31,
        SIGSYS: a system call the filter forbids) unless the test made
        one do that on purpose."""
        bad = [ln for ln in self.lines if SANITIZER.search(ln)]
        if not getattr(self, "expect_sigsys", False):
            bad += [ln for ln in self.lines
                    if "died of signal %d" % signal.SIGSYS in ln]
        return bad

    # ---- files ----

    def set_users(self, users, extra=""):
        self.users = dict(users)
        write_users(self.usersfile, self.users, extra)

    def spool_files(self):
        out = []
        for root, _, files in os.walk(os.path.join(self.state)):
            for fn in files:
                out.append(os.path.join(root, fn))
        return out

    # ---- clients ----

    def connect(self, **kw):
        c = Client("127.0.0.1", self.port, self.key, self.secret, **kw)
        self.clients.append(c)
        return c

    def login(self, user, password=None, **kw):
        c = self.connect(**kw)
        c.login_ok(user, self.users[user] if password is None else password)
        return c

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []


@pytest.fixture
def daemon_factory(request, tmp_path):
    """
    daemon_factory(name=..., users=..., options=..., start=True) -> Daemon.
    Every daemon still running at the end is stopped with SIGTERM and must
    exit 0; sanitizer reports in its stderr fail the case.
    """
    daemons = []
    request.node._relayd_daemons = daemons

    def make(name="relayd", users=None, options=None, start=True,
             secret=SECRET):
        d = Daemon(tmp_path / name, name=name, users=users, options=options,
                   secret=secret)
        daemons.append(d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in daemons:
        # Clients first: a daemon with no client left stops at once
        # (shutdown with clients is a case of its own, in 06).
        d.close_clients()
        if d.running():
            try:
                d.stop()
            except AssertionError as e:
                problems.append("%s: %s" % (d.name, e))
        elif d.proc is not None:
            d.reap_group(timeout=0)
        d.close_clients()
        bad = d.sanitizer_errors()
        if bad:
            problems.append("%s: sanitizer: %s" % (d.name, bad[0].strip()))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def daemon(request, daemon_factory):
    """One running relayd; @pytest.mark.relayd(options=..., users=...)."""
    m = request.node.get_closest_marker("relayd")
    kw = dict(m.kwargs) if m else {}
    return daemon_factory(**kw)
