"""
31 control garbage: raw bytes on relayd's control socket, black box.  Each
broken request gets a CTL_FAIL record with a reason, or the connection is
closed cleanly; relayd never crashes, logged-in clients notice nothing,
and the next valid request (raw, and through relayctl) is served.  Silent
peers and more connections than the cap do not stop the socket from
serving once they go.

Records are u32 type, u32 payload length, in host order; a string is a
u32 length and its bytes; a request payload starts with u32 CTL_VERSION.
"""

import os
import socket
import struct
import subprocess
import time

import pytest

from conftest import BUILD
from relayproto import WAIT, deadline, md5_hex

RELAYCTL = os.path.join(BUILD, "relayctl")

# relayd/proto.h
CTL_VERSION = 1
CTL_ADDUSER, CTL_PASSWD, CTL_DELUSER, CTL_USERS, CTL_KEY, CTL_ROTATE, \
    CTL_SESSIONS, CTL_KICK, CTL_STATS = range(1, 10)
CTL_OK, CTL_FAIL, CTL_ROW, CTL_END = range(100, 104)
REC_HDR_LEN = 8
REC_MAX = 128 * 1024
CONN_MAX = 64           # CONTROL_CONN_MAX in relayd/control.c

GOOD_MD5 = md5_hex("new-pw")


# ---- raw records ----

def u32(n):
    return struct.pack("=I", n)


def rstr(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return u32(len(b)) + b


def record(rtype, payload=b""):
    return struct.pack("=II", rtype, len(payload)) + payload


def request(rtype, fields=b"", version=CTL_VERSION):
    return record(rtype, u32(version) + fields)


def parse_records(data):
    """[(type, payload)] from whole records; fails on a partial one."""
    out = []
    while data:
        assert len(data) >= REC_HDR_LEN, "partial header %r" % data
        rtype, n = struct.unpack("=II", data[:REC_HDR_LEN])
        assert n <= REC_MAX, "reply record of %d bytes" % n
        assert len(data) >= REC_HDR_LEN + n, "partial record %r" % data
        out.append((rtype, data[REC_HDR_LEN:REC_HDR_LEN + n]))
        data = data[REC_HDR_LEN + n:]
    return out


def one_str(payload):
    n, = struct.unpack("=I", payload[:4])
    assert len(payload) == 4 + n, "bad string field %r" % payload
    return payload[4:].decode("utf-8")


def ctl_path(d):
    return os.path.join(d.state, "relayd.sock")


def ctl_open(d, wait=None):
    """
    A connection to the control socket.  The connect blocks while the
    listen backlog is full (the daemon is busy, or at its cap), bounded by
    SO_SNDTIMEO, which bounds an AF_UNIX connect; a Python timeout would
    make it non-blocking, failing at once with EAGAIN instead of waiting.
    """
    wait = WAIT if wait is None else wait
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sec = int(wait)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                     struct.pack("@ll", sec, int((wait - sec) * 1e6)))
        s.connect(ctl_path(d))
        s.settimeout(WAIT)
    except BaseException:
        s.close()
        raise
    return s


def read_to_close(s, until=None):
    """Everything the daemon sends until it closes (deadline)."""
    until = deadline() if until is None else until
    data = b""
    while True:
        left = until - time.monotonic()
        assert left > 0, "control connection still open at the deadline " \
            "(got %r)" % data
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            return data
        if not b:
            return data
        data += b


def exchange(d, data, shut=True):
    """Sends data (then EOF if shut), returns the reply's records."""
    s = ctl_open(d)
    try:
        if data:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return parse_records(read_to_close(s))
    finally:
        s.close()


def fail_reason(recs):
    """The reason of a reply that is exactly one CTL_FAIL record."""
    assert len(recs) == 1, "expected one CTL_FAIL, got %r" % recs
    rtype, payload = recs[0]
    assert rtype == CTL_FAIL, "expected CTL_FAIL, got %r" % recs
    reason = one_str(payload)
    assert reason.strip() != "", "CTL_FAIL without a reason"
    return reason


def expect_fail(d, data, pattern=None, shut=True):
    reason = fail_reason(exchange(d, data, shut=shut))
    if pattern is not None:
        assert pattern in reason, "reason %r lacks %r" % (reason, pattern)
    return reason


def expect_clean_close(d, data):
    recs = exchange(d, data)
    # A FAIL with a reason is fine too; anything else is not.
    if recs:
        fail_reason(recs)


def raw_users(d):
    """The USERS rows through a hand-made request."""
    recs = exchange(d, request(CTL_USERS), shut=False)
    assert recs and recs[-1] == (CTL_END, b""), recs
    names = []
    for rtype, payload in recs[:-1]:
        assert rtype == CTL_ROW, recs
        n, = struct.unpack("=I", payload[:4])
        assert n == 1, recs
        names.append(one_str(payload[4:]))
    return sorted(names)


def relayctl_users(d):
    p = subprocess.run([RELAYCTL, "-s", ctl_path(d), "-H", "users"],
                       capture_output=True, timeout=WAIT)
    assert p.returncode == 0, p.stderr
    return sorted(p.stdout.decode().split())


def still_serving(d, clients=()):
    assert d.running()
    assert raw_users(d) == sorted(d.users)
    assert relayctl_users(d) == sorted(d.users)
    for c in clients:
        c.probe()


@pytest.fixture
def d(daemon):
    if not os.access(RELAYCTL, os.X_OK):
        pytest.skip("%s is not built" % RELAYCTL)
    assert os.path.exists(ctl_path(daemon)), "no control socket"
    return daemon


# ---- framing ----

def test_empty_connection(d):
    a = d.login("alice")
    for _ in range(3):
        assert exchange(d, b"") == []
    still_serving(d, [a])


@pytest.mark.parametrize("n", range(1, REC_HDR_LEN))
def test_partial_header_then_close(d, n):
    a = d.login("alice")
    expect_clean_close(d, request(CTL_USERS)[:n])
    still_serving(d, [a])


@pytest.mark.parametrize("length", [REC_MAX + 1, REC_MAX + 4096,
                                    0x7fffffff, 0xffffffff])
def test_length_too_large(d, length):
    a = d.login("alice")
    # The header alone: refused on its length, no payload awaited.
    hdr = struct.pack("=II", CTL_USERS, length)
    expect_fail(d, hdr, "too large", shut=False)
    expect_fail(d, hdr + u32(CTL_VERSION), "too large", shut=False)
    still_serving(d, [a])


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 10])
def test_payload_shorter_than_announced(d, cut):
    a = d.login("alice")
    payload = u32(CTL_VERSION) + rstr("erin") + rstr(GOOD_MD5)
    hdr = struct.pack("=II", CTL_ADDUSER, len(payload))
    expect_clean_close(d, hdr + payload[:cut])
    assert "erin" not in raw_users(d)
    still_serving(d, [a])


def test_max_length_payload_of_zeros(d):
    # Exactly REC_MAX bytes: whole, read, then refused on its content.
    a = d.login("alice")
    expect_fail(d, record(CTL_USERS, u32(CTL_VERSION) +
                          b"\0" * (REC_MAX - 4)), "trailing")
    still_serving(d, [a])


# ---- header and version ----

@pytest.mark.parametrize("version", [0, 2, CTL_VERSION + 100, 0xffffffff])
def test_wrong_version(d, version):
    a = d.login("alice")
    expect_fail(d, request(CTL_USERS, version=version), "version")
    expect_fail(d, request(CTL_ADDUSER, rstr("erin") + rstr(GOOD_MD5),
                           version=version), "version")
    assert "erin" not in raw_users(d)
    still_serving(d, [a])


def test_no_version(d):
    a = d.login("alice")
    expect_fail(d, record(CTL_USERS), "malformed")
    expect_fail(d, record(CTL_USERS, b"\1\0"), "malformed")
    still_serving(d, [a])


@pytest.mark.parametrize("rtype", [0, 10, 99, 104, 0x7fffffff, 0xffffffff])
def test_unknown_type(d, rtype):
    a = d.login("alice")
    expect_fail(d, request(rtype), "unknown")
    still_serving(d, [a])


@pytest.mark.parametrize("rtype", [CTL_OK, CTL_FAIL, CTL_ROW, CTL_END])
def test_reply_type_as_request(d, rtype):
    a = d.login("alice")
    expect_fail(d, request(rtype, rstr("text")), "unknown")
    still_serving(d, [a])


# ---- fields ----

@pytest.mark.parametrize("rtype,fields", [
    (CTL_USERS, u32(0)),
    (CTL_KEY, b"x"),
    (CTL_ROTATE, b"\0" * 4),
    (CTL_SESSIONS, b"\0"),
    (CTL_STATS, rstr("")),
    (CTL_ADDUSER, rstr("erin") + rstr(GOOD_MD5) + b"\0"),
    (CTL_PASSWD, rstr("alice") + rstr(GOOD_MD5) + rstr("x")),
    (CTL_DELUSER, rstr("bob") + u32(0) + u32(0)),
    (CTL_KICK, rstr("bob") + b"!"),
])
def test_trailing_bytes(d, rtype, fields):
    a = d.login("alice")
    b = d.login("bob")
    key_before = d.key
    expect_fail(d, request(rtype, fields), "trailing")
    still_serving(d, [a, b])
    # Nothing was done: no new user, no new password, no removal, no
    # rotation (the sessions above still speak the old key).
    assert "erin" not in raw_users(d)
    d.connect().login_ok("alice", d.users["alice"])
    assert d.key == key_before


@pytest.mark.parametrize("rtype,fields", [
    (CTL_ADDUSER, b""),
    (CTL_ADDUSER, rstr("erin")),
    (CTL_ADDUSER, rstr("erin") + u32(32) + b"0" * 31),
    (CTL_ADDUSER, u32(1000) + b"erin"),
    (CTL_ADDUSER, u32(0xffffffff) + b"erin"),
    (CTL_DELUSER, rstr("bob")),
    (CTL_DELUSER, rstr("bob") + u32(2)),
    (CTL_DELUSER, rstr("bob") + b"\0\0"),
    (CTL_KICK, b""),
    (CTL_KICK, u32(5) + b"bo"),
])
def test_missing_or_cut_fields(d, rtype, fields):
    a = d.login("alice")
    b = d.login("bob")
    expect_fail(d, request(rtype, fields), "malformed")
    still_serving(d, [a, b])


def test_two_requests_on_one_connection(d):
    a = d.login("alice")
    # In one write: both are in the buffer when the first is parsed.
    expect_fail(d, request(CTL_USERS) * 2, "one request")
    expect_fail(d, request(CTL_ADDUSER, rstr("erin") + rstr(GOOD_MD5)) +
                request(CTL_USERS), "one request")
    assert "erin" not in raw_users(d)
    # One request, its reply, then the daemon closes: a second request
    # on the same connection is never answered.
    s = ctl_open(d)
    try:
        s.sendall(request(CTL_USERS))
        recs = parse_records(read_to_close(s))
        assert recs[-1] == (CTL_END, b""), recs
        try:
            s.sendall(request(CTL_USERS))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_to_close(s) == b""
    finally:
        s.close()
    still_serving(d, [a])


BAD_NAMES = ["../x", "", "a" * 33, "Alice", "ALICE", "-x", ".x", "a b",
             "a/b", "\xe9t\xe9", "a\n", "a\xff"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_user_name(d, name):
    a = d.login("alice")
    before = open(d.usersfile, "rb").read()
    expect_fail(d, request(CTL_ADDUSER, rstr(name) + rstr(GOOD_MD5)),
                "user name")
    expect_fail(d, request(CTL_PASSWD, rstr(name) + rstr(GOOD_MD5)),
                "user name")
    expect_fail(d, request(CTL_DELUSER, rstr(name) + u32(1)), "user name")
    expect_fail(d, request(CTL_KICK, rstr(name)), "user name")
    assert open(d.usersfile, "rb").read() == before
    assert not os.path.exists(os.path.join(d.state, "x"))
    still_serving(d, [a])


BAD_MD5 = ["0" * 31, "0" * 33, "", "g" * 32, "0" * 31 + "z",
           GOOD_MD5.upper(), "A" + "0" * 31, " " + "0" * 31,
           "0" * 31 + "\n"]


@pytest.mark.parametrize("md5", BAD_MD5)
def test_bad_md5hex(d, md5):
    a = d.login("alice")
    before = open(d.usersfile, "rb").read()
    expect_fail(d, request(CTL_ADDUSER, rstr("erin") + rstr(md5)),
                "password hash")
    expect_fail(d, request(CTL_PASSWD, rstr("alice") + rstr(md5)),
                "password hash")
    assert open(d.usersfile, "rb").read() == before
    assert "erin" not in raw_users(d)
    d.connect().login_ok("alice", d.users["alice"])
    still_serving(d, [a])


NUL_NAMES = ["al\0ce", "alice\0", "\0", "\0alice"]
NUL_MD5 = [GOOD_MD5[:31] + "\0", "\0" + GOOD_MD5[1:],
           GOOD_MD5[:16] + "\0" + GOOD_MD5[17:], GOOD_MD5 + "\0"]


def test_nul_inside_strings(d):
    # A string field holding a NUL is malformed, whatever the field
    # (rec_get_str), so "alice\0" can never pass for alice.
    a = d.login("alice")
    b = d.login("bob")
    before = open(d.usersfile, "rb").read()
    for name in NUL_NAMES:
        for req in (request(CTL_ADDUSER, rstr(name) + rstr(GOOD_MD5)),
                    request(CTL_PASSWD, rstr(name) + rstr(GOOD_MD5)),
                    request(CTL_DELUSER, rstr(name) + u32(1)),
                    request(CTL_KICK, rstr(name)),
                    request(CTL_KICK, rstr(name.replace("alice", "bob")))):
            expect_fail(d, req, "malformed")
    for md5 in NUL_MD5:
        expect_fail(d, request(CTL_ADDUSER, rstr("erin") + rstr(md5)),
                    "malformed")
        expect_fail(d, request(CTL_PASSWD, rstr("alice") + rstr(md5)),
                    "malformed")
    assert open(d.usersfile, "rb").read() == before
    d.connect().login_ok("alice", d.users["alice"])
    still_serving(d, [a, b])


def test_valid_adduser_after_garbage(d):
    # The raw encoding itself is right: the same bytes, well formed, work.
    a = d.login("alice")
    for junk in (b"\xff" * 3, record(0xffffffff), request(CTL_OK)):
        exchange(d, junk)
    recs = exchange(d, request(CTL_ADDUSER, rstr("erin") +
                               rstr(md5_hex("erin-pw"))), shut=False)
    assert recs == [(CTL_OK, rstr(""))], recs
    d.users["erin"] = "erin-pw"
    d.connect().login_ok("erin", "erin-pw")
    still_serving(d, [a])


# ---- peers that hold connections ----

def test_silent_client_does_not_block_others(d):
    a = d.login("alice")
    quiet = ctl_open(d)
    half = ctl_open(d)
    try:
        half.sendall(request(CTL_USERS)[:5])
        # The daemon serves others while these two wait for their
        # deadline (CONTROL_TIMEOUT_MS, 10 s; not waited for here).
        for _ in range(3):
            still_serving(d, [a])
        b = d.login("bob")
        assert a.say("meanwhile").text == "OK SAY"
        b.push(r"SAY alice \d+ meanwhile")
        b.probe()
    finally:
        quiet.close()
        half.close()
    still_serving(d, [a])


def test_more_idle_connections_than_the_cap(d):
    a = d.login("alice")
    n = CONN_MAX + 6
    idle = []
    try:
        for _ in range(n):
            idle.append(ctl_open(d))
        # The protocol side is not held up by a full control socket.
        a.probe()
        b = d.login("bob")
        b.probe()
    finally:
        for s in idle:
            s.close()
    # Once they are gone (the daemon sees each EOF), a request is served:
    # accepting resumed.  The deadline in read_to_close bounds the wait.
    until = deadline()
    s = ctl_open(d)
    try:
        s.sendall(request(CTL_USERS))
        recs = parse_records(read_to_close(s, until))
    finally:
        s.close()
    assert recs and recs[-1] == (CTL_END, b""), recs
    still_serving(d, [a, b])


def test_many_idle_then_garbage_from_all(d):
    # The cap's worth of connections each sending a different piece of
    # garbage at once: every one gets its answer or its close.
    a = d.login("alice")
    junk = [request(CTL_USERS, version=9), request(77), record(CTL_USERS),
            struct.pack("=II", CTL_USERS, 0xffffffff),
            request(CTL_ADDUSER, rstr("../x") + rstr(GOOD_MD5)),
            request(CTL_ADDUSER, rstr("erin") + rstr("G" * 32)),
            request(CTL_USERS) * 2, request(CTL_KEY, b"\0")]
    socks = [ctl_open(d) for _ in range(CONN_MAX)]
    try:
        for i, s in enumerate(socks):
            s.sendall(junk[i % len(junk)])
        until = deadline()
        for s in socks:
            fail_reason(parse_records(read_to_close(s, until)))
    finally:
        for s in socks:
            s.close()
    assert "erin" not in raw_users(d)
    still_serving(d, [a])
