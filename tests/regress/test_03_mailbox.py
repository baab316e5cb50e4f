"""
03 mailbox: COMPOSE, MSG pushes, READ, ACK, RECEIPT, the mailbox limit.

Where protocol-v1.md fixes no TEXT (unknown user, unknown ID, ...) only
"ERR VERB" and a non-empty TEXT are asserted.  issue 3 fixes
"ERR COMPOSE mailbox full", so that one is asserted in full.
"""

import os
import re
import signal
import time

import pytest

from relayproto import (BODY_MAX, ID_RE, deadline, marker, msg_fields,
                        receipt_fields)


def err(r, verb):
    assert r.verb == "ERR" and re.fullmatch(verb + r" \S.*", r.args, re.S), r


def test_compose_to_offline_user_then_read(daemon):
    a = daemon.login("alice")
    t0 = int(time.time())
    mid = a.compose_ok("bob", "lunch at one?")
    t1 = int(time.time())
    b = daemon.connect()
    assert b.login_ok("bob", "bob-pw") == 1
    items = b.read()
    assert len(items) == 1
    i, frm, t, body = msg_fields(items[0])
    assert (i, frm, body) == (mid, "alice", "lunch at one?")
    assert t0 - 1 <= t <= t1 + 1
    # Reading removes nothing.
    again = b.read()
    assert [f.text for f in again] == [f.text for f in items]
    # Nor does logging in again.
    assert daemon.connect().login_ok("bob", "bob-pw") == 1


def test_compose_pushes_msg_to_every_session(daemon):
    a = daemon.login("alice")
    b1 = daemon.login("bob")
    b2 = daemon.login("bob")
    c = daemon.login("carol")
    mid = a.compose_ok("bob", "for both of you")
    for b in (b1, b2):
        f = b.push(r"MSG .*")
        assert msg_fields(f)[0] == mid
        assert msg_fields(f)[1:2] == ("alice",)
        assert msg_fields(f)[3] == "for both of you"
    marker(a, [c])
    a.assert_silent()


def test_compose_to_self(daemon):
    a = daemon.login("alice")
    a2 = daemon.login("alice")
    a.send("COMPOSE alice note to self")
    # Both the push and the OK reach the composing session, in any order.
    r = a.reply()
    m = re.fullmatch(r"OK COMPOSE (\S+)", r.text)
    assert m, r
    mid = m.group(1)
    for s in (a, a2):
        f = s.push(r"MSG .*")
        assert msg_fields(f)[0] == mid and msg_fields(f)[3] == "note to self"
    items = a.read()
    assert [msg_fields(f)[0] for f in items] == [mid]
    # ACK of one's own MSG: a RECEIPT for the sender, who is oneself.
    assert a.ack(mid).text == "OK ACK " + mid
    for s in (a, a2):
        f = s.push(r"RECEIPT .*")
        rid, msgid, reader, _ = receipt_fields(f)
        assert (msgid, reader) == (mid, "alice") and rid != mid


def test_read_oldest_first(daemon):
    a = daemon.login("alice")
    c = daemon.login("carol")
    ids = []
    for i in range(6):
        s = a if i % 2 == 0 else c
        ids.append(s.compose_ok("bob", "message %d" % i))
    assert len(set(ids)) == 6
    b = daemon.connect()
    assert b.login_ok("bob", "bob-pw") == 6
    items = b.read()
    assert [msg_fields(f)[0] for f in items] == ids
    assert [msg_fields(f)[3] for f in items] == ["message %d" % i
                                                  for i in range(6)]
    assert [msg_fields(f)[1] for f in items] == ["alice", "carol"] * 3


def test_read_empty_and_with_arguments(daemon):
    a = daemon.login("alice")
    assert a.read() == []
    err(a.command("READ all"), "READ")
    a.probe()


def test_ack_removes_and_receipt_pushed_live(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    mid = a.compose_ok("bob", "please ack")
    b.push(r"MSG .*")
    assert b.ack(mid).text == "OK ACK " + mid
    f = a.push(r"RECEIPT .*")
    rid, msgid, reader, t = receipt_fields(f)
    assert (msgid, reader) == (mid, "bob")
    assert abs(t - time.time()) < 300
    assert ID_RE.fullmatch(rid) and rid != mid
    assert b.read() == []
    # The receipt is a mailbox item: READ lists it, COUNT counts it.
    items = a.read()
    assert [f.text for f in items] == ["RECEIPT %s %s bob %d" % (rid, mid, t)]
    assert daemon.connect().login_ok("alice", "alice-pw") == 1
    # ACK of a RECEIPT removes it and makes no receipt.
    assert a.ack(rid).text == "OK ACK " + rid
    assert a.read() == []
    marker(a, [b])          # no RECEIPT was pushed to bob
    assert b.read() == []


def test_receipt_stored_for_offline_sender(daemon):
    a = daemon.login("alice")
    mid = a.compose_ok("bob", "read me later")
    a.exit()
    b = daemon.login("bob")
    assert b.ack(mid).text == "OK ACK " + mid
    a = daemon.connect()
    assert a.login_ok("alice", "alice-pw") == 1
    items = a.read()
    assert len(items) == 1
    assert receipt_fields(items[0])[1:3] == (mid, "bob")


def test_ack_errors(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    mid = a.compose_ok("bob", "mine")
    own = a.compose_ok("alice", "alice's own")
    a.push(r"MSG .*")
    # Unknown ID, an ID in someone else's mailbox, malformed IDs.
    err(b.ack("1.2.3"), "ACK")
    err(b.ack(own), "ACK")
    err(a.ack(mid), "ACK")
    for bad in ("../" + mid, "a/b", "x" * 65, mid + " extra"):
        err(b.ack(bad), "ACK")
    err(b.command("ACK"), "ACK")
    # Nothing was removed by the failures.
    assert [msg_fields(f)[0] for f in b.read()] == [mid]
    assert [msg_fields(f)[0] for f in a.read()] == [own]
    # ACK twice: the second fails.
    assert b.ack(mid).text == "OK ACK " + mid
    err(b.ack(mid), "ACK")
    rid = receipt_fields(a.push(r"RECEIPT .*"))[0]
    # One receipt only.
    assert [f.fields(2)[0] for f in a.read()] == [own, rid]


def test_concurrent_ack_only_one_wins(daemon):
    a = daemon.login("alice")
    b1 = daemon.login("bob")
    b2 = daemon.login("bob")
    ids = [a.compose_ok("bob", "race %d" % i) for i in range(20)]
    # Both sessions ACK every item, pipelined, at once.
    d1 = b"".join(b1.frame("ACK " + i) for i in ids)
    d2 = b"".join(b2.frame("ACK " + i) for i in reversed(ids))
    b1.send_raw(d1)
    b2.send_raw(d2)
    wins = {}
    for s, order in ((b1, ids), (b2, list(reversed(ids)))):
        for i in order:
            r = s.reply()
            if r.verb == "OK":
                assert r.text == "OK ACK " + i
                assert i not in wins, "two OK ACK for %s" % i
                wins[i] = s
            else:
                err(r, "ACK")
    assert sorted(wins) == sorted(ids)
    got = set()
    until = deadline()
    while len(got) < len(ids):
        got.add(receipt_fields(a.push(r"RECEIPT .*", until))[1])
    assert got == set(ids)
    # One receipt per item, no more.
    assert sorted(receipt_fields(f)[1] for f in a.read()) == sorted(ids)
    assert b1.read() == []


def test_receipt_not_stored_for_deleted_sender(daemon):
    a = daemon.login("alice")
    mid = a.compose_ok("bob", "from a user about to go")
    a.exit()
    users = dict(daemon.users)
    del users["alice"]
    daemon.set_users(users)
    daemon.signal(signal.SIGHUP)
    until = deadline()
    while daemon.connect().login("alice", "alice-pw").verb != "ERR":
        assert time.monotonic() < until, "SIGHUP did not remove alice"
        time.sleep(0.05)
    b = daemon.login("bob")
    assert b.ack(mid).text == "OK ACK " + mid
    # alice comes back: no receipt was stored for her.
    users["alice"] = "alice-pw"
    daemon.set_users(users)
    daemon.signal(signal.SIGHUP)
    until = deadline()
    while True:
        c = daemon.connect()
        r = c.login("alice", "alice-pw")
        if r.verb == "OK":
            break
        assert time.monotonic() < until, "SIGHUP did not add alice back"
        time.sleep(0.05)
    assert r.text == "OK LOGIN 0"


@pytest.mark.parametrize("user", ["nobody", "Bob", "../bob", "bob/..", ".",
                                  "..", "a" * 33])
def test_compose_to_unknown_or_malformed_user(daemon, user):
    a = daemon.login("alice")
    err(a.compose(user, "hello?"), "COMPOSE")
    a.probe()
    before = set(daemon.spool_files())
    assert all(".." not in p for p in before)


@pytest.mark.parametrize("text", ["COMPOSE", "COMPOSE bob", "COMPOSE bob ",
                                  "COMPOSE bob a\0b"],
                         ids=["none", "no-body", "empty-body", "nul"])
def test_compose_bad_arguments(daemon, text):
    a = daemon.login("alice")
    b = daemon.login("bob")
    err(a.command(text), "COMPOSE")
    marker(a, [b])
    assert b.read() == []


def test_compose_body_limits(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    body = "é" * (BODY_MAX // 2 - 1) + "xy"
    assert len(body.encode()) == BODY_MAX
    mid = a.compose_ok("bob", body)
    assert msg_fields(b.push(r"MSG .*"))[3] == body
    assert a.compose("bob", body + "z").text == "ERR COMPOSE too long"
    items = b.read()
    assert [(msg_fields(f)[0], msg_fields(f)[3]) for f in items] == \
        [(mid, body)]


@pytest.mark.parametrize("body", ["two\nlines", "\n\n", " lead and trail ",
                                  "ünïcödé ✓ 中文 😀", "crlf\r\n", "RECEIPT x"],
                         ids=["lf", "lfs", "spaces", "utf8", "crlf",
                              "looks-like-receipt"])
def test_compose_body_kept_exactly(daemon, body):
    a = daemon.login("alice")
    mid = a.compose_ok("bob", body)
    b = daemon.login("bob")
    items = b.read()
    assert [(msg_fields(f)[0], msg_fields(f)[3]) for f in items] == \
        [(mid, body)]


@pytest.mark.relayd(options={"mailbox_max": 3})
def test_mailbox_full(daemon):
    a = daemon.login("alice")
    ids = [a.compose_ok("bob", "n%d" % i) for i in range(3)]
    assert a.compose("bob", "one too many").text == \
        "ERR COMPOSE mailbox full"
    c = daemon.login("carol")
    assert c.compose("bob", "me too").text == "ERR COMPOSE mailbox full"
    b = daemon.login("bob")
    assert [msg_fields(f)[3] for f in b.read()] == ["n0", "n1", "n2"]
    # Room again after an ACK.
    assert b.ack(ids[0]).text == "OK ACK " + ids[0]
    a.push(r"RECEIPT .*")
    assert a.compose_ok("bob", "fits now")
    assert a.compose("bob", "full again").text == "ERR COMPOSE mailbox full"
    # Other mailboxes are not affected.
    assert a.compose_ok("carol", "hi carol")


def test_many_senders_one_mailbox(daemon):
    """Many workers store into one mailbox at once: nothing lost or doubled."""
    senders = [daemon.login(u) for u in ("alice", "carol", "alice", "carol")]
    n = 25
    for k, s in enumerate(senders):
        s.send_raw(b"".join(s.frame("COMPOSE bob s%d m%d" % (k, i))
                            for i in range(n)))
    ok = {}
    for k, s in enumerate(senders):
        for i in range(n):
            r = s.reply()
            m = re.fullmatch(r"OK COMPOSE (\S+)", r.text)
            assert m, r
            assert m.group(1) not in ok
            ok[m.group(1)] = "s%d m%d" % (k, i)
    b = daemon.connect()
    assert b.login_ok("bob", "bob-pw") == len(senders) * n
    items = b.read()
    got = {msg_fields(f)[0]: msg_fields(f)[3] for f in items}
    assert len(got) == len(items) == len(ok)
    assert got == ok
    # Each sender's items in the order it composed them.
    for k in range(len(senders)):
        mine = [msg_fields(f)[3] for f in items
                if msg_fields(f)[3].startswith("s%d " % k)]
        assert mine == ["s%d m%d" % (k, i) for i in range(n)]


def test_spool_has_no_temporary_files_left(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    ids = [a.compose_ok("bob", "x%d" % i) for i in range(5)]
    for i in ids:
        assert b.ack(i).text == "OK ACK " + i
    for f in daemon.spool_files():
        base = os.path.basename(f)
        assert not base.startswith((".tmp.", ".ack.")), f
