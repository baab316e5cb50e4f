"""
02 broadcast: SAY and its push, WHO, bodies at the limit, pipelining, and
several sessions of one user.
"""

import re
import time

import pytest

from relayproto import BODY_MAX, deadline, marker

USERS = {"alice": "a", "bob": "b", "carol": "c", "b-c": "1", "b.c": "2",
         "b0": "3", "b_c": "4", "_": "5"}


def say_push(c, frm, body):
    f = c.push(r"SAY %s \d+ .*" % frm)
    _, t, got = f.fields(3)
    assert got == body, (got[:60], body[:60])
    assert abs(int(t) - time.time()) < 300
    return f


def test_say_reaches_every_other_session(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    c = daemon.login("carol")
    assert a.say("hello all").text == "OK SAY"
    say_push(b, "alice", "hello all")
    say_push(c, "alice", "hello all")
    # Not back to the sender (bounded wait, then a probe).
    a.assert_silent()
    a.probe()


def test_say_reaches_senders_other_sessions(daemon):
    a1 = daemon.login("alice")
    a2 = daemon.login("alice")
    b = daemon.login("bob")
    assert a1.say("from session one").text == "OK SAY"
    say_push(a2, "alice", "from session one")
    say_push(b, "alice", "from session one")
    a1.assert_silent()
    assert a2.say("from session two").text == "OK SAY"
    say_push(a1, "alice", "from session two")
    say_push(b, "alice", "from session two")


def test_say_time_is_now(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    t0 = int(time.time())
    a.say("when")
    f = b.push(r"SAY alice \d+ when")
    t1 = int(time.time())
    assert t0 - 1 <= int(f.fields(3)[1]) <= t1 + 1


def test_says_arrive_in_order(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    n = 100
    a.send_raw(b"".join(a.frame("SAY number %d" % i) for i in range(n)))
    for i in range(n):
        assert a.reply().text == "OK SAY"
    for i in range(n):
        f = b.push(r"SAY alice \d+ number \d+")
        assert f.fields(3)[2] == "number %d" % i


def test_say_interleaving_from_two_senders(daemon):
    # Each sender's SAYs keep their own order at the receiver.
    a = daemon.login("alice")
    c = daemon.login("carol")
    b = daemon.login("bob")
    n = 50
    a.send_raw(b"".join(a.frame("SAY a%d" % i) for i in range(n)))
    c.send_raw(b"".join(c.frame("SAY c%d" % i) for i in range(n)))
    for s in (a, c):
        for i in range(n):
            assert s.reply().text == "OK SAY"
    got = {"alice": [], "carol": []}
    until = deadline()
    while len(got["alice"]) + len(got["carol"]) < 2 * n:
        f = b.push(r"SAY (alice|carol) \d+ .*", until)
        frm, _, body = f.fields(3)
        got[frm].append(body)
    assert got["alice"] == ["a%d" % i for i in range(n)]
    assert got["carol"] == ["c%d" % i for i in range(n)]


@pytest.mark.parametrize("body", [
    "x" * BODY_MAX,
    "é" * (BODY_MAX // 2),                  # 2-byte characters, 32768 bytes
    "€" * (BODY_MAX // 3) + "ab",           # 3-byte characters + 2 bytes
    "😀" * (BODY_MAX // 4),                 # 4-byte characters
], ids=["ascii", "2byte", "3byte", "4byte"])
def test_say_body_exactly_max(daemon, body):
    assert len(body.encode("utf-8")) == BODY_MAX
    a = daemon.login("alice")
    b = daemon.login("bob")
    assert a.say(body).text == "OK SAY"
    say_push(b, "alice", body)


@pytest.mark.parametrize("body", [
    "x" * (BODY_MAX + 1),
    "é" * (BODY_MAX // 2) + "x",
    "x" + "😀" * (BODY_MAX // 4),
], ids=["ascii", "2byte", "4byte"])
def test_say_body_too_long(daemon, body):
    assert len(body.encode("utf-8")) == BODY_MAX + 1
    a = daemon.login("alice")
    b = daemon.login("bob")
    assert a.say(body).text == "ERR SAY too long"
    marker(a, [b])


@pytest.mark.parametrize("body", [
    "line one\nline two\n",
    "\n",
    "crlf\r\nbody",
    "  spaces  kept  ",
    " ",
    "ünïcödé ✓ 中文 😀 \u200b",
    "tab\there",
    "HEAD 1 PING fake",
], ids=["lf", "only-lf", "crlf", "spaces", "one-space", "utf8", "tab",
        "looks-like-plaintext"])
def test_say_body_kept_exactly(daemon, body):
    a = daemon.login("alice")
    b = daemon.login("bob")
    assert a.say(body).text == "OK SAY"
    say_push(b, "alice", body)


@pytest.mark.parametrize("text", ["SAY", "SAY ", "SAY a\0b"],
                         ids=["no-body", "empty-body", "nul"])
def test_say_bad_body(daemon, text):
    # "ERR SAY bad arguments (or a more precise TEXT)": only ERR SAY is
    # asserted.
    a = daemon.login("alice")
    b = daemon.login("bob")
    r = a.command(text)
    assert r.verb == "ERR" and r.args.startswith("SAY "), r
    marker(a, [b])


@pytest.mark.relayd(users=USERS)
def test_who_sorted_unique(daemon):
    clients = [daemon.login(u) for u in ("b_c", "alice", "b0", "b.c", "b-c",
                                          "_", "alice", "b0")]
    # Connected but not logged in: not listed.
    daemon.connect().hello()
    want = sorted({"b_c", "alice", "b0", "b.c", "b-c", "_"},
                  key=lambda s: s.encode())
    assert want == ["_", "alice", "b-c", "b.c", "b0", "b_c"]
    assert clients[0].who() == want
    assert clients[-1].who() == want


def test_who_forgets_a_session_that_left(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    b2 = daemon.login("bob")
    assert a.who() == ["alice", "bob"]
    b.exit()
    assert a.who() == ["alice", "bob"]      # bob's other session remains
    b2.close()                              # hang-up without EXIT
    until = deadline()
    while a.who() != ["alice"]:
        assert time.monotonic() < until, "bob still listed by WHO"
        time.sleep(0.05)


def test_who_with_arguments(daemon):
    a = daemon.login("alice")
    r = a.command("WHO alice")
    assert r.verb == "ERR" and r.args.startswith("WHO "), r
    a.probe()


def test_pipelining_replies_in_order(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    cmds = ["PING p1", "WHO", "SAY piped", "FROB x", "PING p2",
            "COMPOSE bob piped mail", "READ", "COMPOSE nobody x", "ACK nope",
            "HELLO relay/1", "SAY", "PING p3"]
    a.send_raw(b"".join(a.frame(t) for t in cmds))
    want = [r"PONG p1", r"OK WHO 2 alice bob", r"OK SAY",
            r"ERR FROB unknown command", r"PONG p2", r"OK COMPOSE \S+",
            r"OK READ 0", r"ERR COMPOSE .+", r"ERR ACK .+",
            r"ERR HELLO already logged in", r"ERR SAY .+", r"PONG p3"]
    for w in want:
        r = a.reply()
        assert re.fullmatch(w, r.text), (w, r)
    say_push(b, "alice", "piped")
    b.push(r"MSG \S+ alice \d+ piped mail")


def test_pipelining_before_login(daemon):
    c = daemon.connect()
    c.send_raw(c.frame("HELLO relay/1") + c.frame("PING a") +
               c.frame("WHO") + c.frame("PING b"))
    assert c.reply().verb == "HELLO"
    assert c.reply().text == "PONG a"
    assert c.reply().text == "ERR WHO not logged in"
    assert c.reply().text == "PONG b"


def test_pipelining_many_pings_in_one_write(daemon):
    c = daemon.connect()
    n = 500
    c.send_raw(b"".join(c.frame("PING t%d" % i) for i in range(n)))
    for i in range(n):
        assert c.reply().text == "PONG t%d" % i


def test_pipelining_byte_by_byte(daemon):
    # Frames split at every byte still make the same frames.
    c = daemon.connect()
    data = c.frame("PING one") + c.frame("PING two")
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
    assert c.reply().text == "PONG one"
    assert c.reply().text == "PONG two"


def test_crlf_and_empty_lines_accepted(daemon):
    c = daemon.connect()
    f1 = c.frame("PING one")
    f2 = c.frame("PING two")
    c.send_raw(b"\n\r\n" + f1[:-1] + b"\r\n" + b"\n\n\n\n\n" + f2)
    assert c.reply().text == "PONG one"
    assert c.reply().text == "PONG two"
