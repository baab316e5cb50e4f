"""
08 operations: relayd.conf(5) and relayd -n, flags over the file, SIGHUP
reloads with live sessions, pid file and port conflicts, daemon mode, and
the bounded stop on SIGTERM.
"""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

import conftest
from relayproto import WAIT, Client, deadline, msg_fields

RUN_WAIT = 20.0


def write_conf(d, text, name="relayd.conf"):
    path = os.path.join(d.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def with_conf(d, path):
    """The fixture's daemon, started with -c path (flags still given)."""
    base = d.argv
    d.argv = lambda options=None: base(options) + ["-c", path]
    return d


def check(argv, env=None):
    """relayd -n ...: (status, stderr)."""
    p = subprocess.run([conftest.RELAYD, "-n"] + argv, env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=RUN_WAIT)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def files_conf(d):
    """Keywords naming the fixture's own files."""
    return ("state_dir %s\nsecret_file %s\nkey_file %s\nusers_file %s\n"
            % (d.state, d.secretfile, d.keyfile, d.usersfile))


def option_names():
    """Every -o name, as relayd lists them for an unknown one."""
    p = subprocess.run([conftest.RELAYD, "-n", "-o", "no_such_name=1"],
                       stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, timeout=RUN_WAIT)
    m = re.search(r"unknown name \(([a-z_, ]+)\)", p.stderr.decode())
    assert p.returncode == 1 and m, p.stderr
    return m.group(1).split(", ")


def snapshot(top):
    out = {}
    for root, dirs, files in os.walk(top):
        for fn in dirs + files:
            path = os.path.join(root, fn)
            st = os.lstat(path)
            out[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


# ---- relayd -n ----

def test_check_good_file(daemon_factory, tmp_path):
    d = daemon_factory(start=False)
    path = write_conf(d, "# a good file\n\n" + files_conf(d) +
                      "listen 127.0.0.1\nlisten ::1   # comment\n"
                      "port 0\ncontrol %s/ctl.sock\npidfile %s/pid\n"
                      "user _relayd\nlog_level debug\n"
                      "log_facility local3\n\tttl 60\nidle_timeout 0\n"
                      % (d.dir, d.dir))
    rc, err = check(["-c", path])
    assert rc == 0, err
    assert "configuration OK" in err


def test_check_has_no_side_effects(daemon_factory, tmp_path):
    """No state directory, key, secret or users file made or rewritten."""
    d = daemon_factory(start=False)
    fresh = str(tmp_path / "fresh" / "state")
    path = write_conf(d, "state_dir %s\n" % fresh)
    rc, err = check(["-c", path], env=dict(os.environ, RELAYD_SECRET=""))
    # An empty RELAYD_SECRET is a bad code: reported, nothing created.
    assert rc == 1 and "RELAYD_SECRET" in err, err
    assert not os.path.exists(fresh), err
    env = dict(os.environ)
    env.pop("RELAYD_SECRET", None)
    rc, err = check(["-c", path], env=env)
    assert rc == 0, err
    assert not os.path.exists(fresh), "relayd -n made %s" % fresh
    # An existing state directory: its key (per-launch) is not rewritten
    # and no secret, key or users file appears.
    with open(os.path.join(d.state, "key"), "w") as f:
        f.write("old key\n")
    path = write_conf(d, "state_dir %s\nkey_file per-launch\n" % d.state,
                      "second.conf")
    before = snapshot(d.dir)
    rc, err = check(["-c", path], env=env)
    assert rc == 0, err
    assert snapshot(d.dir) == before
    assert sorted(os.listdir(d.state)) == ["key"]


BAD = [
    # (line, what the message must say)
    ("bogus 1", r'unknown keyword "bogus"'),
    ("port 99999", r"port 99999: not a port number"),
    ("ttl 0", r"ttl 0: value is too small"),
    ("ttl abc", r"ttl given twice \(first on line 5\)"),
    ("login_grace abc", r"login_grace abc: value is invalid"),
    ("state_dir relative/dir", r"state_dir relative/dir: not an absolute"),
    ("key_file key.txt", r"key_file key\.txt: not an absolute path"),
    ("log_level loud", r"log_level loud: not a log level"),
    ("log_facility kern", r"log_facility kern: not a syslog facility"),
    ("user -x", r"user -x: not a user name"),
    ("listen 127.0.0.1", None),
    ("listen 127.0.0.1", r"listen 127\.0\.0\.1: address given twice"),
    ("control /a b", r"control: one value expected"),
    ("idle_timeout", r"idle_timeout: value missing"),
    ("mailbox_max   # nothing", r"mailbox_max: value missing"),
    ("x" * 1100, r"line too long"),
    ("pidfile /run/a", None),
    ("pidfile /run/b", r"pidfile given twice \(first on line \d+\)"),
]


def test_check_reports_every_error(daemon_factory):
    d = daemon_factory(start=False)
    head = "# three lines\n\n"
    lines = [ln for ln, _ in BAD]
    path = write_conf(d, head + "\n".join(lines) + "\n")
    rc, err = check(["-c", path] + d.argv()[1:])
    assert rc == 1, err
    want = 0
    for i, (_, rx) in enumerate(BAD):
        if rx is None:
            continue
        want += 1
        n = i + 3
        assert re.search(r"%s:%d: %s" % (re.escape(path), n, rx), err), \
            "line %d (%s) not reported as %r:\n%s" % (n, BAD[i][0], rx, err)
    assert len(re.findall(re.escape(path) + r":\d+: ", err)) == want, err
    assert re.search(r"%d errors" % want, err), err


def test_check_missing_file_given_with_c(daemon_factory):
    d = daemon_factory(start=False)
    path = os.path.join(d.dir, "absent.conf")
    rc, err = check(["-c", path] + d.argv()[1:])
    assert rc == 1 and path in err, err
    # Starting (not only -n) refuses it too.
    d.spawn(d.argv() + ["-c", path])
    assert d.wait_exit() == 1


def test_missing_default_file_is_fine(daemon_factory, tmp_path):
    if os.geteuid() == 0 and os.path.exists("/etc/relayd.conf"):
        pytest.skip("root with an /etc/relayd.conf: the default file "
                    "exists here")
    d = daemon_factory(start=False)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "nothing"))
    rc, err = check(d.argv()[1:], env=env)
    assert rc == 0 and "configuration OK" in err, err


def test_every_o_name_is_a_keyword(daemon_factory):
    """One table: each -o name is a keyword, with the same checks."""
    d = daemon_factory(start=False)
    names = option_names()
    assert {"ttl", "login_grace", "rotate_grace", "invalid_max",
            "frame_max", "body_max", "mailbox_max", "slow_max",
            "idle_timeout"} <= set(names)
    args = d.argv()[1:]
    for name in names:
        for value in ("1", "-1", "x", "100000"):
            path = write_conf(d, "%s %s\n" % (name, value))
            rc_file, err = check(["-c", path] + args)
            rc_flag, err2 = check(["-o", "%s=%s" % (name, value)] + args)
            assert rc_file == rc_flag, (name, value, err, err2)
            assert "unknown keyword" not in err, err


def test_flags_override_file(daemon_factory):
    d = daemon_factory(start=False)
    # On its own the file is bad (body_max does not fit in frame_max,
    # a state directory nobody may use): the flags put it right.
    path = write_conf(d, "body_max 60000\nstate_dir /proc/nonexistent\n"
                      "listen 127.0.0.9\nport 1\n")
    rc, err = check(["-c", path])
    assert rc == 1 and "body_max 60000" in err, err
    rc, err = check(["-c", path, "-o", "body_max=100"] + d.argv()[1:])
    assert rc == 0, err
    # Started: -l, -p and -s win over listen, port and state_dir (the
    # fixture waits for "listening on 127.0.0.1"), -o over body_max.
    path = write_conf(d, "body_max 100\nstate_dir /proc/nonexistent\n"
                      "listen 127.0.0.9\nport 1\n")
    with_conf(d, path)
    d.start(options={"body_max": 200})
    a = d.login("alice")
    assert a.say("b" * 150).text == "OK SAY"
    assert a.say("b" * 201).verb == "ERR"


# ---- reload ----

def test_reload_keeps_sessions_and_applies_limits(daemon_factory):
    d = daemon_factory(start=False)
    path = write_conf(d, "login_grace 30\n")
    with_conf(d, path)
    d.start()
    a = d.login("alice")
    b = d.login("bob")
    early = d.connect()
    early.hello()
    # New file: a shorter login_grace, a new user, and a user and a
    # control socket that cannot change live (listen and port are given
    # as flags: those win over the file, so they do not change).
    write_conf(d, "login_grace 1\nlisten 127.0.0.2\nuser nobody\n"
               "control %s/other.sock\n" % d.dir)
    d.set_users(dict(d.users, erin="erin-pw"))
    mark = d.log_mark()
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded", since=mark)
    d.wait_log(r"cannot change user while running; restart to apply",
               since=mark)
    d.wait_log(r"cannot change control while running; restart to apply",
               since=mark)
    assert "cannot change listen" not in d.log_since(mark)
    d.wait_log(r"login_grace 1 \(was 30\)", since=mark)
    d.wait_log(r": 5 users", since=mark)
    # Sessions logged in before the reload go on chatting.
    assert a.say("after reload").text == "OK SAY"
    f = b.next_push()
    assert f.verb == "SAY" and f.fields(3)[2] == "after reload", f
    assert b.say("back").text == "OK SAY"
    assert a.next_push().fields(3)[2] == "back"
    # The new user can log in.
    e = d.connect()
    e.login_ok("erin", "erin-pw")
    # A new connection gets the new login_grace.
    t0 = time.monotonic()
    late = d.connect()
    late.hello()
    late.expect_bye("login timeout", deadline())
    assert time.monotonic() - t0 < 15
    # The connection made before keeps its own 30 s.
    early.ping("early")
    assert sorted(a.who()) == ["alice", "bob", "erin"]


def test_bad_file_on_reload_keeps_old_settings(daemon_factory):
    d = daemon_factory(start=False)
    path = write_conf(d, "login_grace 1\n")
    with_conf(d, path)
    d.start()
    a = d.login("alice")
    write_conf(d, "login_grace 600\nbogus 1\nttl 0\n")
    mark = d.log_mark()
    d.signal(signal.SIGHUP)
    d.wait_log(re.escape(path) + r":2: unknown keyword", since=mark)
    d.wait_log(re.escape(path) + r":3: ttl 0: value is too small",
               since=mark)
    d.wait_log(r"2 errors; configuration not reloaded", since=mark)
    assert "configuration reloaded" not in d.log_since(mark)
    assert a.ping("alive").text == "PONG alive"
    # login_grace is still 1, not 600.
    late = d.connect()
    late.hello()
    late.expect_bye("login timeout", deadline())
    # A good file again is taken.
    write_conf(d, "login_grace 30\n")
    mark = d.log_mark()
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded", since=mark)


# ---- conflicts ----

def test_pidfile_conflict(daemon_factory):
    one = daemon_factory(name="one", start=False)
    pidfile = os.path.join(one.dir, "relayd.pid")
    with_conf(one, write_conf(one, "pidfile %s\n" % pidfile))
    one.start()
    with open(pidfile) as f:
        assert int(f.read().strip()) == one.proc.pid
    two = daemon_factory(name="two", start=False)
    with_conf(two, write_conf(two, "pidfile %s\n" % pidfile))
    two.spawn(two.argv())
    assert two.wait_exit() == 1
    assert re.search(r"%s: another relayd is running \(pid %d\)"
                     % (re.escape(pidfile), one.proc.pid),
                     two.log_text()), two.log_text()
    one.login("alice").ping()
    one.stop()
    assert not os.path.exists(pidfile), "pid file left after SIGTERM"


def test_port_conflict(daemon_factory):
    one = daemon_factory(name="one")
    two = daemon_factory(name="two", start=False)
    two.spawn(two.argv() + ["-p", str(one.port)])
    assert two.wait_exit() == 1
    assert re.search(r"cannot listen on 127\.0\.0\.1:%d: address in use"
                     % one.port, two.log_text()), two.log_text()
    one.login("alice").ping()


# ---- daemon mode ----

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except FileNotFoundError:
        return True
    return st[st.rfind(")") + 2] == "Z"


def test_daemon_mode(daemon_factory):
    d = daemon_factory(start=False)
    pidfile = os.path.join(d.dir, "run", "relayd.pid")
    os.makedirs(os.path.dirname(pidfile))
    port = free_port()
    path = write_conf(d, files_conf(d) + "listen 127.0.0.1\nport %d\n"
                      "pidfile %s\ncontrol %s/ctl.sock\n"
                      % (port, pidfile, d.dir))
    p = subprocess.run([conftest.RELAYD, "-c", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=RUN_WAIT)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    # Ready when the first process returns: the pid file is there.
    with open(pidfile) as f:
        pid = int(f.read().strip())
    try:
        assert not proc_gone(pid)
        assert os.getsid(pid) == pid, "not a session leader: not detached"
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        assert int(st[st.rfind(")") + 2:].split()[1]) != os.getpid()
        c = Client("127.0.0.1", port, d.key, d.secret)
        try:
            c.login_ok("alice", d.users["alice"])
            c.ping("daemon")
        finally:
            c.close()
        # A second one is refused, naming the pid.
        p2 = subprocess.run([conftest.RELAYD, "-c", path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=RUN_WAIT)
        assert p2.returncode == 1
        assert ("(pid %d)" % pid) in p2.stderr.decode() or \
            "another relayd" in p2.stderr.decode(), p2.stderr
        os.kill(pid, signal.SIGTERM)
        until = time.monotonic() + WAIT
        while not (proc_gone(pid) and not os.path.exists(pidfile)):
            assert time.monotonic() < until, \
                "daemon still running or pid file left after SIGTERM"
            time.sleep(0.05)
    finally:
        if not proc_gone(pid):
            os.kill(pid, signal.SIGKILL)


# ---- stop ----

def test_sigterm_bounded_no_acked_item_lost(daemon):
    a = daemon.login("alice")
    keep = a.compose_ok("carol", "kept")
    gone = a.compose_ok("carol", "acked")
    c = daemon.login("carol")
    items = [msg_fields(f)[0] for f in c.read()]
    assert items == [keep, gone]
    assert c.ack(gone).text.startswith("OK ACK")
    # A client that never reads, with output waiting for it.
    stuck = daemon.login("bob", rcvbuf=4096)
    for i in range(50):
        assert a.say("flood %d %s" % (i, "x" * 2000)).text == "OK SAY"
    t0 = time.monotonic()
    daemon.signal(signal.SIGTERM)
    for cl in (a, c):
        cl.expect_bye("shutting down")
        cl.close()
    assert daemon.wait_exit() == 0
    assert time.monotonic() - t0 < 12, "stop took too long"
    stuck.close()
    daemon.close_clients()
    daemon.reap_group()
    daemon.start()
    c = daemon.connect()
    c.login_ok("carol", "carol-pw")
    ids = [msg_fields(f)[0] for f in c.read()]
    assert ids == [keep], ids


def test_daemon_mode_start_error_on_terminal(daemon_factory):
    """A problem found after detaching is still printed, and status 1."""
    d = daemon_factory(start=False)
    pidfile = os.path.join(d.dir, "relayd.pid")
    with open(d.usersfile, "a") as f:
        f.write("Bad Line\n")
    path = write_conf(d, files_conf(d) + "listen 127.0.0.1\nport 0\n"
                      "pidfile %s\ncontrol %s/ctl.sock\n" % (pidfile, d.dir))
    p = subprocess.run([conftest.RELAYD, "-c", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=RUN_WAIT)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert re.search(r"users:\d+: \S", err), err
    assert not os.path.exists(pidfile), "pid file left by a failed start"
