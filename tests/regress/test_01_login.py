"""
01 login: HELLO, LOGIN, what is allowed before login, login failures and
the login grace.  protocol-v1.md, "Commands".
"""

import re

import pytest

from relayproto import NONCE_RE, deadline, head_of, login_proof


def test_head_of_5678():
    # The example HEAD of protocol-v1.md: our client computes it alike.
    assert head_of("5678") == "674f3c2c1a8a6f90461e8a66fb5550ba"


def test_hello_gives_fresh_nonces(daemon):
    c = daemon.connect()
    nonces = [c.hello() for _ in range(5)]
    for n in nonces:
        assert NONCE_RE.fullmatch(n)
    assert len(set(nonces)) == 5
    # Another connection gets its own.
    assert daemon.connect().hello() not in nonces


@pytest.mark.parametrize("version", ["relay/2", "relay/0", "relay/10",
                                     "RELAY/1", "relay/1.0", "relay/11",
                                     "relay"])
def test_hello_unsupported_version(daemon, version):
    c = daemon.connect()
    r = c.command("HELLO " + version)
    assert r.text == "ERR HELLO unsupported version"
    # The connection goes on and a right HELLO works.
    c.hello()


@pytest.mark.parametrize("text", ["HELLO", "HELLO relay/1 extra"])
def test_hello_bad_arguments(daemon, text):
    # Wrong arguments: the protocol fixes only "ERR HELLO" and a TEXT.
    c = daemon.connect()
    r = c.command(text)
    assert r.verb == "ERR" and r.args.startswith("HELLO "), r
    c.probe()


def test_login_ok(daemon):
    for user in daemon.users:
        c = daemon.connect()
        assert c.login_ok(user, daemon.users[user]) == 0


def test_login_utf8_password_and_every_user_character(daemon):
    # "d.e-f_9" uses . - _ and a digit; its password is non-ASCII UTF-8.
    c = daemon.connect()
    assert c.login_ok("d.e-f_9", "pässwörd ✓") == 0


def test_nothing_pushed_at_login(daemon):
    a = daemon.login("alice")
    a.compose_ok("bob", "waiting for you")
    b = daemon.connect()
    assert b.login_ok("bob", "bob-pw") == 1
    b.probe()               # the first frame after OK LOGIN is the PONG
    assert b.pushes == []


def test_login_last_nonce_wins(daemon):
    c = daemon.connect()
    n1 = c.hello()
    n2 = c.hello()
    assert n1 != n2
    # The first nonce was replaced: a proof for it fails...
    r = c.login("alice", "alice-pw", nonce=n1)
    assert r.verb == "ERR" and r.args.startswith("LOGIN "), r
    # ... and the LOGIN used up the second one too.
    r = c.login("alice", "alice-pw", nonce=n2)
    assert r.verb == "ERR" and r.args.startswith("LOGIN "), r
    c2 = daemon.connect()
    c2.hello()
    m2 = c2.hello()
    assert c2.login("alice", "alice-pw", nonce=m2).text == "OK LOGIN 0"


def test_login_uses_up_the_nonce(daemon):
    c = daemon.connect()
    n = c.hello()
    bad = c.login("alice", "wrong", nonce=n)
    assert bad.verb == "ERR", bad
    # The right proof for the same nonce, with no new HELLO: refused.
    again = c.login("alice", "alice-pw", nonce=n)
    assert again.text == bad.text
    # A new HELLO, then it works (2 failures so far: not yet ended).
    assert c.login("alice", "alice-pw").text == "OK LOGIN 0"


def test_login_not_replayable_across_connections(daemon):
    a = daemon.connect()
    n = a.hello()
    assert a.login("alice", "alice-pw", nonce=n).text == "OK LOGIN 0"
    b = daemon.connect()
    b.hello()
    r = b.command("LOGIN alice " + login_proof("alice-pw", n))
    assert r.verb == "ERR" and r.args.startswith("LOGIN "), r


def _failure_text(daemon, text, hello=True):
    c = daemon.connect()
    if hello:
        c.hello()
    r = c.command(text)
    assert r.verb == "ERR" and r.args.startswith("LOGIN "), r
    c.probe()               # still connected after one failure
    return r.text


def test_login_failures_all_same_text(daemon):
    """Every failure gets the same TEXT (no hint which part was wrong)."""
    texts = {}
    # Wrong password.
    c = daemon.connect()
    n = c.hello()
    texts["wrong password"] = c.command(
        "LOGIN alice " + login_proof("bob-pw", n)).text
    # Unknown user with a well-formed proof.
    c = daemon.connect()
    n = c.hello()
    texts["unknown user"] = c.command(
        "LOGIN mallory " + login_proof("x", n)).text
    # Malformed users.
    for bad in ("Alice", "al!ce", "-alice", "a" * 33, ".a"):
        c = daemon.connect()
        n = c.hello()
        texts["malformed user " + bad] = c.command(
            "LOGIN %s %s" % (bad, login_proof("alice-pw", n))).text
    # Malformed proofs: upper-case hex, short, long, not hex.
    for name, mangle in (("upper", str.upper), ("short", lambda p: p[:-1]),
                         ("long", lambda p: p + "0"),
                         ("nonhex", lambda p: "g" + p[1:])):
        c = daemon.connect()
        n = c.hello()
        texts["proof " + name] = c.command(
            "LOGIN alice " + mangle(login_proof("alice-pw", n))).text
    # No NONCE at all (no HELLO before).
    texts["no nonce"] = _failure_text(
        daemon, "LOGIN alice " + "0" * 64, hello=False)
    for k, t in texts.items():
        assert re.fullmatch(r"ERR LOGIN \S.*", t), (k, t)
    assert len(set(texts.values())) == 1, texts


def test_login_wrong_argument_count(daemon):
    # The protocol does not say whether this is "bad arguments" or the
    # login failure TEXT: only ERR LOGIN is asserted.
    for text in ("LOGIN", "LOGIN alice", "LOGIN alice %s extra" % ("0" * 64)):
        c = daemon.connect()
        c.hello()
        r = c.command(text)
        assert r.verb == "ERR" and r.args.startswith("LOGIN "), r


def test_three_failed_logins_bye(daemon):
    c = daemon.connect()
    for i in range(2):
        r = c.login("alice", "nope")
        assert r.verb == "ERR", r
    c.hello()
    c.send("LOGIN alice " + login_proof("nope", c.nonce))
    r = c.reply()
    assert r.verb == "ERR" and r.args.startswith("LOGIN "), r
    c.expect_bye("too many failed logins")


def test_three_failures_of_every_kind_bye(daemon):
    c = daemon.connect()
    # No nonce, unknown user, wrong password: all count.
    assert c.command("LOGIN alice " + "0" * 64).verb == "ERR"
    assert c.login("mallory", "x").verb == "ERR"
    c.hello()
    c.send("LOGIN alice " + login_proof("bad", c.nonce))
    assert c.reply().verb == "ERR"
    c.expect_bye("too many failed logins")


def test_two_failures_then_success(daemon):
    c = daemon.connect()
    assert c.login("alice", "x").verb == "ERR"
    assert c.login("alice", "y").verb == "ERR"
    assert c.login("alice", "alice-pw").text == "OK LOGIN 0"
    c.ping("still-here")


def test_login_after_login(daemon):
    c = daemon.login("alice")
    n = "0" * 32
    r = c.command("LOGIN alice " + login_proof("alice-pw", n))
    assert r.text == "ERR LOGIN already logged in"
    r = c.command("HELLO relay/1")
    assert r.text == "ERR HELLO already logged in"
    c.ping()


@pytest.mark.parametrize("text", ["SAY hello", "COMPOSE bob hi", "READ",
                                  "ACK 1.2.3", "WHO"])
def test_not_logged_in(daemon, text):
    c = daemon.connect()
    verb = text.split(" ")[0]
    assert c.command(text).text == "ERR %s not logged in" % verb
    c.hello()
    assert c.command(text).text == "ERR %s not logged in" % verb
    c.probe()


def test_not_logged_in_after_failed_login(daemon):
    c = daemon.connect()
    assert c.login("alice", "wrong").verb == "ERR"
    assert c.command("WHO").text == "ERR WHO not logged in"


def test_not_logged_in_gets_no_say(daemon):
    idle = daemon.connect()
    idle.hello()
    a = daemon.login("alice")
    b = daemon.login("bob")
    a.say("for logged-in sessions only")
    b.push(r"SAY alice \d+ for logged-in sessions only")
    idle.probe()
    idle.assert_silent()


def test_ping_before_login(daemon):
    c = daemon.connect()
    c.ping()
    c.ping("tok-1.A_z")
    c.ping("x" * 64)


@pytest.mark.parametrize("text", ["PING a b", "PING a/b", "PING " + "x" * 65,
                                  "PING é"])
def test_ping_bad_token(daemon, text):
    c = daemon.connect()
    r = c.command(text)
    assert r.verb == "ERR" and r.args.startswith("PING "), r
    c.probe()


def test_exit_before_login(daemon):
    c = daemon.connect()
    c.exit()


def test_exit_after_login(daemon):
    c = daemon.login("alice")
    c.exit()


def test_exit_with_arguments(daemon):
    c = daemon.login("alice")
    r = c.command("EXIT now")
    assert r.verb == "ERR" and r.args.startswith("EXIT "), r
    c.probe()


@pytest.mark.relayd(options={"login_grace": 2})
def test_login_timeout(daemon):
    quiet = daemon.connect()            # says nothing
    talker = daemon.connect()
    talker.hello()                      # HELLO is not a LOGIN
    pinger = daemon.connect()
    pinger.ping()
    ok = daemon.login("alice")          # logged in in time: stays
    for c in (quiet, talker):
        c.expect_bye("login timeout", deadline())
    pinger.until_closed(deadline())
    assert pinger.received[-1].text == "BYE login timeout"
    ok.ping("after-grace")
    assert ok.who() == ["alice"]


@pytest.mark.relayd(options={"login_grace": 2})
def test_login_timeout_failed_login_then_nothing(daemon):
    c = daemon.connect()
    assert c.login("alice", "wrong").verb == "ERR"
    c.expect_bye("login timeout")

