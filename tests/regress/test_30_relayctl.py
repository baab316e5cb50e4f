"""
30 relayctl: every command of relayctl(8) against the real relayd, black
box: users come and go without a restart, deluser and kick end live
sessions, another uid is refused, concurrent adduser calls all land, a key
rotation with hundreds of clients chatting drops no session and loses no
frame, and sessions and stats agree with what the test did.

The control socket is expected at STATEDIR/relayd.sock (the fixture gives
relayd -s STATEDIR).  While relayd has no control socket these cases are
skipped, saying so; once the socket exists nothing here is skipped.
"""

import os
import re
import stat
import subprocess
import time

import pytest
from cryptography.fernet import Fernet

from conftest import BUILD
from relayproto import WAIT, Client, deadline, md5_hex

RELAYCTL = os.path.join(BUILD, "relayctl")
NOBODY = 65534
KEY_RE = re.compile(r"[A-Za-z0-9_-]{43}=")
SINCE_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def ctl_socket(d):
    return os.path.join(d.state, "relayd.sock")


@pytest.fixture
def ctl(daemon):
    """relayctl bound to the running daemon's control socket."""
    return Ctl(daemon)


class Ctl:
    def __init__(self, d):
        self.d = d
        self.sock = ctl_socket(d)
        if not os.access(RELAYCTL, os.X_OK):
            pytest.skip("%s is not built" % RELAYCTL)
        # relayd logs "listening on" once it is ready, control socket
        # included: no wait is needed, only a check.
        if not os.path.exists(self.sock):
            pytest.skip("relayd has no control socket at %s yet" % self.sock)
        assert stat.S_ISSOCK(os.stat(self.sock).st_mode)

    def run(self, *args, stdin=None, sock=None, env=None, **kw):
        argv = [RELAYCTL, "-s", self.sock if sock is None else sock]
        argv += list(args)
        p = subprocess.run(argv, input=stdin, capture_output=True,
                           timeout=WAIT, env=env, **kw)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        return p.returncode, out, err

    def ok(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        assert rc == 0, "relayctl %s: exit %d: %s" % (args, rc, err)
        assert err == "", err
        return out

    def fail(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        assert rc == 1, "relayctl %s: exit %d, expected 1: %s%s" % (
            args, rc, out, err)
        assert out == ""
        assert err.startswith("relayctl: "), err
        return err

    def rows(self, *args):
        out = self.ok("-H", *args)
        return [ln.split("\t") for ln in out.splitlines()]

    def users(self):
        return sorted(r[0] for r in self.rows("users"))

    def sessions(self):
        return [{"pid": int(r[0]), "user": r[1], "addr": r[2],
                 "port": int(r[3]), "since": int(r[4]), "idle": int(r[5]),
                 "in": int(r[6]), "out": int(r[7])}
                for r in self.rows("sessions")]

    def stats(self):
        return {r[0]: r[1] for r in self.rows("stats")}

    def adduser(self, name, password):
        return self.ok("adduser", "-p", name,
                       stdin=(password + "\n").encode("utf-8"))


def users_file(d):
    """NAME -> MD5HEX from the users file, every line checked."""
    out = {}
    with open(d.usersfile) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line == "" or line.startswith("#"):
                continue
            m = re.fullmatch(r"([a-z0-9_][a-z0-9_.-]{0,31}):([0-9a-f]{32})",
                             line)
            assert m, "users:%d: bad line %r" % (n, line)
            assert m.group(1) not in out, "users:%d: duplicate" % n
            out[m.group(1)] = m.group(2)
    return out


def session_of(ctl, c):
    """The sessions row of client c (by its local port)."""
    port = c.sock.getsockname()[1]
    rows = [s for s in ctl.sessions() if s["port"] == port]
    assert len(rows) == 1, "no single session on port %d: %r" % (
        port, ctl.sessions())
    return rows[0]


def ends_with_bye(c, text=None):
    frames = c.until_closed()
    assert frames and frames[-1].verb == "BYE", frames[-5:]
    if text is not None:
        assert frames[-1].args == text, frames[-1]


class KeyClient(Client):
    """A Client that follows KEY pushes, as relay(7) says a client must."""

    keys_seen = None

    def _decode(self, line):
        f = super()._decode(line)
        if f.verb == "KEY":
            if self.keys_seen is None:
                self.keys_seen = []
            self.keys_seen.append(f.args)
            self.key = f.args.encode("ascii")
            self.fernet = Fernet(self.key)
        return f


# ---- users ----

def test_adduser_then_login_at_once(daemon, ctl):
    assert ctl.adduser("dave", "dave-pw ✓") == ""
    assert "dave" in ctl.users()
    c = daemon.connect()
    c.login_ok("dave", "dave-pw ✓")
    f = users_file(daemon)
    assert f["dave"] == md5_hex("dave-pw ✓")
    st = os.stat(daemon.usersfile)
    assert stat.S_IMODE(st.st_mode) == 0o600
    # The others are still there.
    for u in daemon.users:
        assert u in f


def test_adduser_refusals(daemon, ctl):
    err = ctl.fail("adduser", "-p", "alice", stdin=b"x\n")
    assert "alice" in err or "exist" in err
    # Checked locally: nothing sent, the file is untouched.
    before = open(daemon.usersfile).read()
    ctl.fail("adduser", "-p", "Bad", stdin=b"x\n")
    ctl.fail("adduser", "-p", "-x", stdin=b"x\n")
    ctl.fail("adduser", "-p", "a" * 33, stdin=b"x\n")
    err = ctl.fail("adduser", "-p", "erin", stdin=b"\n")
    assert "empty" in err
    ctl.fail("adduser", "-p", "erin", stdin=b"")
    ctl.fail("adduser", "-p", "erin", stdin=b"\xff\xfe\n")
    assert open(daemon.usersfile).read() == before
    assert "erin" not in ctl.users()


def test_adduser_without_terminal_needs_p(daemon, ctl):
    rc, out, err = ctl.run("adduser", "erin", stdin=b"pw\n",
                           start_new_session=True)
    assert rc == 1 and "-p" in err, err
    assert "erin" not in ctl.users()


def test_passwd(daemon, ctl):
    a = daemon.login("alice")
    ctl.ok("passwd", "-p", "alice", stdin=b"new-pw\n")
    assert users_file(daemon)["alice"] == md5_hex("new-pw")
    r = daemon.connect().login("alice", daemon.users["alice"])
    assert r.verb == "ERR", r
    daemon.connect().login_ok("alice", "new-pw")
    # The session already logged in goes on.
    a.probe()
    ctl.fail("passwd", "-p", "nosuch", stdin=b"x\n")
    assert "nosuch" not in users_file(daemon)


def test_deluser_ends_live_sessions(daemon, ctl):
    b1 = daemon.login("bob")
    b2 = daemon.login("bob")
    a = daemon.login("alice")
    ctl.ok("deluser", "bob")
    ends_with_bye(b1)
    ends_with_bye(b2)
    a.probe()
    assert "bob" not in ctl.users()
    assert "bob" not in users_file(daemon)
    r = daemon.connect().login("bob", daemon.users["bob"])
    assert r.verb == "ERR", r
    ctl.fail("deluser", "bob")


def mailbox(d, user):
    return os.path.join(d.state, "spool", user)


def test_deluser_keeps_or_removes_mailbox(daemon, ctl):
    a = daemon.login("alice")
    a.compose_ok("bob", "kept")
    a.compose_ok("carol", "removed")
    assert os.listdir(mailbox(daemon, "bob"))
    ctl.ok("deluser", "bob")
    assert os.listdir(mailbox(daemon, "bob")), "mailbox removed without -r"
    ctl.ok("deluser", "-r", "carol")
    assert not os.path.exists(mailbox(daemon, "carol"))


def test_users_lists_every_user(daemon, ctl):
    assert ctl.users() == sorted(daemon.users)
    out = ctl.ok("users")
    lines = out.splitlines()
    assert lines[0].strip() == "NAME"
    assert sorted(ln.strip() for ln in lines[1:]) == sorted(daemon.users)


def test_concurrent_adduser(daemon, ctl):
    names = ["user%02d" % i for i in range(50)]
    procs = [subprocess.Popen([RELAYCTL, "-s", ctl.sock, "adduser", "-p", n],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for n in names]
    for n, p in zip(names, procs):
        out, err = p.communicate(("pw-%s\n" % n).encode(), timeout=WAIT)
        assert p.returncode == 0, "%s: %s" % (n, err)
    f = users_file(daemon)
    for n in names:
        assert f[n] == md5_hex("pw-" + n)
    for u in daemon.users:
        assert u in f
    assert len(f) == len(names) + len(daemon.users)
    assert ctl.users() == sorted(f)
    for n in names[::10]:
        daemon.connect().login_ok(n, "pw-" + n)


# ---- key ----

def test_key_prints_the_key(daemon, ctl):
    assert ctl.ok("key") == daemon.key.decode() + "\n"
    assert ctl.ok("-H", "key") == daemon.key.decode() + "\n"


def test_rotate(daemon, ctl):
    c = KeyClient("127.0.0.1", daemon.port, daemon.key, daemon.secret)
    daemon.clients.append(c)
    c.login_ok("alice", daemon.users["alice"])
    waiting = daemon.connect()
    waiting.hello()
    new = ctl.ok("rotate").rstrip("\n")
    assert KEY_RE.fullmatch(new) and new != daemon.key.decode()
    assert ctl.ok("key") == new + "\n"
    c.push(r"KEY " + re.escape(new))
    c.probe()
    ends_with_bye(waiting, "key rotated")
    # The key file holds the new key when relayd made it; with -k the
    # operator's file is relayd's business (relayd(8)).
    n = KeyClient("127.0.0.1", daemon.port, new.encode(), daemon.secret)
    daemon.clients.append(n)
    n.login_ok("bob", daemon.users["bob"])


@pytest.mark.load
@pytest.mark.relayd(options={"slow_max": 64 * 1024 * 1024,
                             "max_clients_per_source": 1000},
                    users={"u%d" % i: "pw%d" % i for i in range(10)})
def test_rotate_with_200_clients_chatting(daemon, ctl):
    clients = []
    for i in range(200):
        c = KeyClient("127.0.0.1", daemon.port, daemon.key, daemon.secret)
        daemon.clients.append(c)
        c.login_ok("u%d" % (i % 10), "pw%d" % (i % 10))
        clients.append(c)
    talkers = clients[::10]         # 20 sessions chat, everyone listens
    per_phase = 5
    sent = {}                       # talker index -> bodies in order

    def phase(p):
        for t, c in enumerate(talkers):
            for k in range(per_phase):
                body = "t%d-p%d-m%d" % (t, p, k)
                c.send("SAY " + body)   # pipelined; replies read later
                sent.setdefault(t, []).append(body)

    phase(0)
    rot = subprocess.Popen([RELAYCTL, "-s", ctl.sock, "-t",
                            str(int(WAIT * 3)), "rotate"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    phase(1)                        # during the rotation, old key
    out, err = rot.communicate(timeout=WAIT * 3)
    assert rot.returncode == 0, err
    new = out.decode().rstrip("\n")
    assert KEY_RE.fullmatch(new), out
    # Half the talkers take in their KEY first, the rest send in flight.
    for c in talkers[::2]:
        c.push(r"KEY " + re.escape(new))
    phase(2)

    # 200 clients decrypting 60,000 pushes in one Python process: on a
    # loaded machine this takes a while; the deadline only bounds a hang.
    until = deadline(WAIT * 6)
    total = per_phase * 3
    for i, c in enumerate(clients):
        mine = talkers.index(c) if c in talkers else None
        got = {}
        want = sum(total for t in sent if t != mine)
        n = 0
        while n < want:
            f = c.push(r"SAY u\d+ \d+ t\d+-p\d-m\d+", until)
            t = int(f.fields(3)[2].split("-")[0][1:])
            got.setdefault(t, []).append(f.fields(3)[2])
            n += 1
        for t, bodies in sent.items():
            if t != mine:
                assert got.get(t) == bodies, "client %d from talker %d" % (
                    i, t)
        if mine is not None:
            for _ in range(total):
                assert c.reply(until).text == "OK SAY"
        if c.keys_seen is None or new not in c.keys_seen:
            c.push(r"KEY " + re.escape(new), until)
        assert c.keys_seen == [new], c.keys_seen
        c.probe()
    assert len(ctl.sessions()) == 200


# ---- sessions, kick, stats ----

def test_sessions(daemon, ctl):
    t0 = int(time.time())
    a = daemon.login("alice")
    a.ping()                         # in: HELLO LOGIN PING; out: 3 replies
    w = daemon.connect()             # not logged in, no frame yet
    sa = session_of(ctl, a)
    sw = session_of(ctl, w)
    assert sa["user"] == "alice" and sw["user"] == "-"
    for s in (sa, sw):
        assert s["addr"] == "127.0.0.1"
        assert s["pid"] in daemon.group_pids()
        assert t0 - 1 <= s["since"] <= time.time() + 1
        assert 0 <= s["idle"] <= 5
    assert sa["pid"] != sw["pid"]
    # Counters come to the hub now and then: poll for them (deadline).
    until = deadline()
    while (sa["in"], sa["out"]) != (3, 3) and time.monotonic() < until:
        time.sleep(0.05)
        sa = session_of(ctl, a)
    assert (sa["in"], sa["out"]) == (3, 3), sa
    assert (sw["in"], sw["out"]) == (0, 0), sw
    # For people: a header, aligned columns, local time.
    lines = ctl.ok("sessions").splitlines()
    assert lines[0].split() == ["PID", "USER", "ADDRESS", "PORT", "SINCE",
                                "IDLE", "IN", "OUT"]
    assert len(lines) == 3
    assert all(SINCE_RE.search(ln) for ln in lines[1:])
    a.exit()
    until = deadline()
    while len(ctl.sessions()) != 1 and time.monotonic() < until:
        time.sleep(0.05)
    assert [s["port"] for s in ctl.sessions()] == [sw["port"]]


def test_kick_user_and_pid(daemon, ctl):
    a1 = daemon.login("alice")
    a2 = daemon.login("alice")
    b = daemon.login("bob")
    c = daemon.login("carol")
    ctl.ok("kick", "alice")
    ends_with_bye(a1, "kicked")
    ends_with_bye(a2, "kicked")
    ctl.ok("kick", str(session_of(ctl, b)["pid"]))
    ends_with_bye(b, "kicked")
    c.probe()
    # A kicked user may log in again.
    daemon.login("alice").probe()
    ctl.fail("kick", "nosuch")


def test_stats(daemon, ctl):
    daemon.login("alice")
    daemon.login("bob").compose_ok("carol", "stored")
    assert daemon.connect().login("alice", "wrong").verb == "ERR"
    s = ctl.stats()
    assert s and all(k != "" for k in s), s

    def value(pattern):
        keys = [k for k in s if re.search(pattern, k)]
        assert len(keys) == 1, "no single stat %r in %r" % (pattern, s)
        return int(s[keys[0]])

    assert value(r"uptime") >= 0
    assert value(r"fail") >= 1
    assert value(r"stored|mailbox") >= 1
    lines = ctl.ok("stats").splitlines()
    assert lines[0].split() == ["NAME", "VALUE"]


# ---- errors ----

def test_unreachable_socket(daemon, ctl, tmp_path):
    path = str(tmp_path / "nosuch.sock")
    rc, out, err = ctl.run("users", sock=path)
    assert rc == 2 and path in err and out == "", err
    # Without -s, RELAYCTL_SOCKET names the socket.
    env = dict(os.environ, RELAYCTL_SOCKET=ctl.sock)
    p = subprocess.run([RELAYCTL, "-H", "users"], env=env,
                       capture_output=True, timeout=WAIT)
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.decode().split()) == sorted(daemon.users)


def test_usage_errors(daemon, ctl):
    for args in (["frob"], ["users", "extra"], ["deluser"],
                 ["deluser", "-x", "bob"], ["-t", "x", "users"], []):
        rc, out, err = ctl.run(*args)
        assert rc == 1 and "usage" in err, (args, err)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch uid")
def test_other_uid_refused(daemon, ctl):
    # The state directory (0700) keeps others out; open it as far as the
    # socket so that relayd's own peer check is what refuses.
    state_mode = stat.S_IMODE(os.stat(daemon.state).st_mode)
    sock_mode = stat.S_IMODE(os.stat(ctl.sock).st_mode)
    assert state_mode & 0o077 == 0 and sock_mode & 0o077 == 0
    dirfd = os.open(daemon.state, os.O_PATH | os.O_DIRECTORY)
    try:
        os.chmod(daemon.state, 0o711)
        os.chmod(ctl.sock, 0o666)

        def drop():
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)

        # The pytest directories above the state are root's: reach the
        # socket through the descriptor instead of the path.
        mark = daemon.log_mark()
        p = subprocess.run([RELAYCTL, "-s", "/proc/self/fd/%d/relayd.sock"
                            % dirfd, "adduser", "-p", "mallory"],
                           input=b"pw\n", capture_output=True, timeout=WAIT,
                           pass_fds=(dirfd,), preexec_fn=drop)
        err = p.stderr.decode()
        assert p.returncode == 1, (p.returncode, err)
        assert "mallory" not in ctl.users()
        daemon.wait_log(r"\b%d\b" % NOBODY, since=mark)
    finally:
        os.chmod(daemon.state, state_mode)
        os.chmod(ctl.sock, sock_mode)
        os.close(dirfd)
