"""
test_20_client_script.py: relay(1) without a terminal, black-box.  Every
scripted command, the one-shot forms, the output format and its escaping,
de-duplication and ACK after showing, the config file rules, and each exit
status: 0, 1, 2 (cannot connect), 3 (wrong key, wrong secret), 4 (wrong
password), 5 (BYE), 6 (connection lost), 7 (a command got err).

The other side of each conversation is relayproto's independent client.
Every wait has a deadline.
"""

import os
import re
import select
import signal
import socket
import subprocess
import time

import pytest
from cryptography.fernet import Fernet

from relayproto import WAIT, Client, msg_fields, receipt_fields

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("RELAY_BUILD") or \
    os.path.normpath(os.path.join(HERE, "..", "..", "build"))
RELAY = os.path.join(BUILD, "relay")

pytestmark = pytest.mark.skipif(not os.access(RELAY, os.X_OK),
                                reason="%s is not built yet" % RELAY)

LINE = {
    "say": re.compile(r"say (\S+) ([0-9]+) (.+)"),
    "msg": re.compile(r"msg (\S+) (\S+) ([0-9]+) (.+)"),
    "receipt": re.compile(r"receipt (\S+) (\S+) (\S+) ([0-9]+)"),
}


def unescape(s):
    """The inverse of the scripted-mode escaping (\\\\ and \\xNN)."""
    out = bytearray()
    i = 0
    b = s.encode()
    while i < len(b):
        if b[i:i + 1] == b"\\":
            if b[i + 1:i + 2] == b"\\":
                out += b"\\"
                i += 2
                continue
            assert b[i + 1:i + 2] == b"x", s
            out.append(int(b[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


class Relay:
    """Credentials for relay(1) against one daemon."""

    def __init__(self, daemon, tmp_path):
        self.d = daemon
        self.dir = tmp_path / "client"
        self.dir.mkdir(exist_ok=True)
        self.home = self.dir / "home"
        self.home.mkdir(exist_ok=True)
        self.pwfiles = {}
        for user, pw in daemon.users.items():
            p = self.dir / ("pw." + user)
            p.write_text(pw + "\n", encoding="utf-8")
            os.chmod(p, 0o600)
            self.pwfiles[user] = str(p)

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("RELAY_KEY", "RELAY_SECRET")}
        env["HOME"] = str(self.home)
        env["XDG_CONFIG_HOME"] = str(self.home / ".config")
        env.update(extra)
        return env

    def argv(self, user="alice", key=True, secret=True, pw=True, port=None,
             extra=()):
        a = [RELAY, "-t", "%d" % max(2, int(WAIT / 4))]
        if key:
            a += ["-K", self.d.keyfile]
        if secret:
            a += ["-S", self.d.secretfile]
        if pw:
            a += ["-P", self.pwfiles[user]]
        a += ["-u", user] + list(extra)
        a += ["127.0.0.1", str(self.d.port if port is None else port)]
        return a

    def run(self, args=(), stdin=b"", env=None, timeout=WAIT, **kw):
        """One whole run: (status, stdout lines, stderr)."""
        p = subprocess.run(self.argv(**kw) + list(args), input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env or self.env(), timeout=timeout)
        out = p.stdout.decode("utf-8", "replace").splitlines()
        return p.returncode, out, p.stderr.decode("utf-8", "replace")

    def start(self, env=None, **kw):
        return Session(self.argv(**kw), env or self.env())


class Session:
    """A scripted relay kept running: write lines, read event lines."""

    def __init__(self, argv, env):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.buf = b""
        self.lines = []

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def line(self, pattern, until=None):
        """The next output line; it must match pattern."""
        until = time.monotonic() + WAIT if until is None else until
        rx = re.compile(pattern)
        while b"\n" not in self.buf:
            left = until - time.monotonic()
            assert left > 0, "no output line (wanted %r); got %r" % (
                pattern, self.lines)
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                assert chunk, "relay ended (%s) before %r; stderr %r" % (
                    self.p.wait(WAIT), pattern, self.p.stderr.read())
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        text = raw.decode("utf-8")
        self.lines.append(text)
        m = rx.fullmatch(text)
        assert m, "line %r does not match %r" % (text, pattern)
        return m

    def finish(self):
        """Close stdin; (status, remaining lines, stderr)."""
        try:
            out, err = self.p.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
            raise AssertionError("relay did not end after EOF")
        rest = (self.buf + out).decode("utf-8").splitlines()
        return self.p.returncode, rest, err.decode("utf-8", "replace")

    def wait(self):
        try:
            return self.p.wait(WAIT)
        finally:
            if self.p.poll() is None:
                self.p.kill()


@pytest.fixture
def relay(daemon, tmp_path):
    return Relay(daemon, tmp_path)


def test_every_command_in_order(daemon, relay):
    bob = daemon.login("bob")
    script = "\n".join([
        "hello everyone",
        "/who",
        "/msg bob lunch at one?",
        "/ping tok-1",
        "/ping",
        "//slash text",
        "/msg nobody hi",
        "/bogus",
        "/msg bob",
        "/read",
        "/help",
        "",
    ]) + "\n"
    rc, out, err = relay.run(stdin=script.encode())
    assert out[0] == "ok LOGIN 0", (out, err)
    assert out[1:] == [
        "ok SAY",
        "who alice bob",
        out[3],
        "pong tok-1",
        "pong",
        "ok SAY",
        "err COMPOSE " + out[7].split(" ", 2)[2],
        "err NONE unknown command (try /help)",
        "err COMPOSE usage: /msg USER TEXT",
        "ok READ 0",
    ], (out, err)
    mid = re.fullmatch(r"ok COMPOSE (\S+)", out[3]).group(1)
    assert rc == 7, (rc, err)          # some commands got err
    bob.push(r"SAY alice [0-9]+ hello everyone")
    bob.push(r"SAY alice [0-9]+ /slash text")
    m = bob.push(r"MSG .*")
    assert msg_fields(m)[0] == mid and msg_fields(m)[3] == "lunch at one?"


def test_eof_waits_for_replies_then_exits(daemon, relay):
    bob = daemon.login("bob")
    n = 40
    script = "".join("line %d\n" % i for i in range(n))
    rc, out, err = relay.run(stdin=script.encode())
    assert rc == 0, err
    assert out == ["ok LOGIN 0"] + ["ok SAY"] * n
    for i in range(n):
        bob.push(r"SAY alice [0-9]+ line %d" % i)


def test_last_line_without_newline(daemon, relay):
    rc, out, err = relay.run(stdin=b"/who")
    assert (rc, out) == (0, ["ok LOGIN 0", "who alice"]), err


def test_one_shot_forms(daemon, relay):
    bob = daemon.login("bob")
    rc, out, err = relay.run(["say", "-n", "/not", "a", "command"])
    assert (rc, out) == (0, ["ok LOGIN 0", "ok SAY"]), err
    bob.push(r"SAY alice [0-9]+ -n /not a command")
    rc, out, err = relay.run(["msg", "bob", "see", "you"])
    assert rc == 0 and re.fullmatch(r"ok COMPOSE \S+", out[1]), (out, err)
    rc, out, err = relay.run(["who"])
    assert (rc, out) == (0, ["ok LOGIN 0", "who alice bob"]), err
    rc, out, err = relay.run(["msg", "nobody", "x"])
    assert rc == 7 and out[1].startswith("err COMPOSE "), (rc, out)


def test_read_prints_acks_and_receipts(daemon, relay):
    bob = daemon.login("bob")
    ids = [bob.compose_ok("alice", "first"),
           bob.compose_ok("alice", "second one")]
    rc, out, err = relay.run(["read"])
    assert rc == 0, err
    assert out[0] == "ok LOGIN 2"
    got = [LINE["msg"].fullmatch(x).groups() for x in out[1:3]]
    assert [(g[0], g[1], g[3]) for g in got] == [
        (ids[0], "bob", "first"), (ids[1], "bob", "second one")]
    assert out[3:] == ["ok READ 2"]
    # ACKed after they were shown: bob gets receipts, the mailbox is empty.
    got = sorted(tuple(receipt_fields(bob.push(r"RECEIPT .*"))[1:3])
                 for _ in ids)
    assert got == sorted((i, "alice") for i in ids)
    rc, out, err = relay.run(["read"])
    assert (rc, out) == (0, ["ok LOGIN 0", "ok READ 0"]), err
    # bob's receipts, with relay as bob.
    rc, out, err = relay.run(["read"], user="bob")
    assert rc == 0 and out[0] == "ok LOGIN 2" and out[-1] == "ok READ 2"
    r = [LINE["receipt"].fullmatch(x).groups() for x in out[1:3]]
    assert sorted(g[1] for g in r) == sorted(ids)
    assert all(g[2] == "alice" for g in r)


def test_dedup_by_id(daemon, relay):
    """A MSG pushed live and listed again by READ is shown once."""
    s = relay.start()
    s.line(r"ok LOGIN 0")
    s.send("/msg alice note to self")
    mid = s.line(r"ok COMPOSE (\S+)").group(1)
    s.send("/read")
    s.send("/read")
    rc, rest, err = s.finish()
    msgs = [x for x in rest if x.startswith("msg ")]
    assert len(msgs) == 1 and msgs[0].split(" ")[1] == mid, rest
    # The second READ may still list it (before the ACK): never shown.
    assert len([x for x in rest if x.startswith("ok READ ")]) == 2, rest
    assert rc == 0, err


def test_pushes_and_escaping(daemon, relay):
    carol = daemon.login("carol")
    s = relay.start()
    s.line(r"ok LOGIN 0")
    body = "red \x1b[31mX\x1b[0m bell\x07 back\\slash tab\tnl\nend \u00e9 " \
        "c1\u009b del\x7f"
    carol.say(body)
    m = s.line(r"say carol ([0-9]+) (\S.*)")
    assert unescape(m.group(2)) == body.encode()
    text = m.group(2)
    assert "\x1b" not in text and "\n" not in text and "\t" not in text
    assert text.startswith("red \\x1b[31mX")
    assert "\u00e9" in text            # printable UTF-8 stays as it is
    assert "\\x0a" in text and "\\\\" in text and "\\xc2\\x9b" in text
    carol.compose_ok("alice", "hi\x1b]0;title\x07")
    m = s.line(r"msg (\S+) carol ([0-9]+) (.*)")
    assert unescape(m.group(3)) == b"hi\x1b]0;title\x07"
    rc, rest, err = s.finish()
    assert rc == 0 and rest == [], (rest, err)
    # Shown, then ACKed: carol gets the receipt.
    carol.push(r"RECEIPT \S+ \S+ alice [0-9]+")


def test_wrong_key_exit_3(daemon, relay, tmp_path):
    bad = tmp_path / "badkey"
    bad.write_bytes(Fernet.generate_key() + b"\n")
    os.chmod(bad, 0o600)
    t0 = time.monotonic()
    rc, out, err = relay.run(["who"], extra=["-K", str(bad), "-t", "1"])
    assert rc == 3, (rc, out, err)
    assert "no answer: the key or the secret code is probably wrong" in err
    assert out == []
    assert time.monotonic() - t0 < WAIT


def test_wrong_secret_exit_3(daemon, relay):
    env = relay.env(RELAY_SECRET="0000")
    rc, out, err = relay.run(["who"], secret=False, env=env,
                             extra=["-t", "1"])
    assert rc == 3 and "probably wrong" in err, (rc, out, err)


def test_wrong_password_exit_4(daemon, relay, tmp_path):
    bad = tmp_path / "badpw"
    bad.write_text("not-the-password\n")
    os.chmod(bad, 0o600)
    rc, out, err = relay.run(["who"], pw=False, extra=["-P", str(bad)])
    assert rc == 4 and "login refused" in err, (rc, out, err)


def test_unknown_user_exit_4(daemon, relay):
    rc, out, err = relay.run(["who"], extra=["-u", "mallory"])
    assert rc == 4, (rc, out, err)


def test_cannot_connect_exit_2(daemon, relay):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                          # nothing listens there now
    rc, out, err = relay.run(["who"], port=port)
    assert rc == 2 and "cannot connect" in err, (rc, out, err)


def test_bye_exit_5(daemon, relay):
    s = relay.start()
    s.line(r"ok LOGIN 0")
    daemon.stop()
    s.line(r"bye shutting down")
    assert s.wait() == 5
    assert "closed the connection" in s.p.stderr.read().decode()


def test_connection_lost_exit_6(daemon, relay):
    s = relay.start()
    s.line(r"ok LOGIN 0")
    daemon.kill9()
    assert s.wait() == 6
    assert "connection lost" in s.p.stderr.read().decode()


def test_usage_exit_1(daemon, relay):
    for args in (["bogus"], ["say"], ["msg", "bob"], ["read", "x"],
                 ["msg", "Bad-Name", "x"]):
        rc, out, err = relay.run(args)
        assert rc == 1 and out == [], (args, rc, out, err)
    p = subprocess.run([RELAY], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=WAIT)
    assert p.returncode == 1 and b"usage" in p.stderr


def test_no_credentials_without_tty_exit_1(daemon, relay):
    p = subprocess.run([RELAY, "-u", "alice", "127.0.0.1",
                        str(daemon.port), "who"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=relay.env(), timeout=WAIT, start_new_session=True)
    assert p.returncode == 1 and b"no key" in p.stderr, p


def write_config(relay, text, mode):
    d = relay.home / ".config" / "relay"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "config"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_config_file(daemon, relay):
    key = open(daemon.keyfile).read().strip()
    text = ("# relay config\nkey %s\nsecret %s\nuser bob\n"
            "password-file %s\n" % (key, daemon.secret, relay.pwfiles["bob"]))
    write_config(relay, text, 0o600)
    p = subprocess.run([RELAY, "127.0.0.1", str(daemon.port), "who"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, env=relay.env(),
                       timeout=WAIT)
    assert p.returncode == 0, p
    assert p.stdout.decode().splitlines() == ["ok LOGIN 0", "who bob"]
    # The same file readable by others is refused.
    write_config(relay, text, 0o644)
    p = subprocess.run([RELAY, "127.0.0.1", str(daemon.port), "who"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, env=relay.env(),
                       timeout=WAIT)
    assert p.returncode == 1 and b"0600" in p.stderr, p
    # A file with neither key nor secret may be readable.
    write_config(relay, "user bob\n", 0o644)
    rc, out, err = relay.run(["who"], user="bob",
                             extra=["-u", "bob"])
    assert rc == 0 and out[-1] == "who bob", err


def test_config_unknown_keyword(daemon, relay):
    write_config(relay, "colour blue\n", 0o600)
    rc, out, err = relay.run(["who"])
    assert rc == 1 and "config:1: unknown keyword colour" in err, err


def test_environment_credentials(daemon, relay):
    key = open(daemon.keyfile).read().strip()
    env = relay.env(RELAY_KEY=key, RELAY_SECRET=daemon.secret)
    rc, out, err = relay.run(["who"], key=False, secret=False, env=env)
    assert (rc, out) == (0, ["ok LOGIN 0", "who alice"]), err


def test_sigterm_quits_cleanly(daemon, relay):
    s = relay.start()
    s.line(r"ok LOGIN 0")
    s.p.send_signal(signal.SIGTERM)
    assert s.wait() == 0


def test_follows_key_rotation(daemon, relay):
    """After relayctl rotate the client goes on under the new key without
    a word: its next SAY and /who work, and a new-key session sees them."""
    relayctl = os.path.join(BUILD, "relayctl")
    sock = os.path.join(daemon.state, "relayd.sock")
    if not os.access(relayctl, os.X_OK):
        pytest.skip("%s is not built" % relayctl)
    s = relay.start()
    s.line(r"ok LOGIN 0")
    s.send("before")
    s.line(r"ok SAY")
    p = subprocess.run([relayctl, "-s", sock, "rotate"], capture_output=True,
                       timeout=WAIT)
    assert p.returncode == 0, p.stderr
    new = p.stdout.decode().strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", new), new
    # A session that only knows the new key sees what alice says next.
    bob = Client("127.0.0.1", daemon.port, new.encode(), daemon.secret)
    daemon.clients.append(bob)
    bob.login_ok("bob", daemon.users["bob"])
    s.send("after")
    s.line(r"ok SAY")
    bob.push(r"SAY alice [0-9]+ after")
    s.send("/who")
    s.line(r"who alice bob")
    rc, rest, err = s.finish()
    assert rc == 0, (rc, rest, err)
    assert rest == [], rest
    assert "key" not in err.lower(), err
