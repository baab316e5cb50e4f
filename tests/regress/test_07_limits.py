"""
test_07_limits.py: the abuse limits.  Clients in all and per source,
failed-login penalties (and the rate of guessing they leave an attacker,
measured against the defaults), wrong-HEAD penalties, and the frame-rate
limit.
"""

import time

import pytest

import relayproto
from relayproto import Closed, login_proof
from hardening import closed_at_once, connect_from


@pytest.mark.relayd(options={"max_clients": 2})
def test_max_clients(daemon):
    a = daemon.login("alice")
    daemon.connect()
    mark = daemon.log_mark()
    assert closed_at_once(daemon)
    daemon.wait_log(r"refused: 2 connections \(max_clients\)", since=mark)
    assert len(daemon.worker_pids()) == 2     # no worker was forked
    daemon.clients[1].close()
    # A place is free again once the worker has gone.
    c = None
    until = relayproto.deadline()
    while c is None:
        c = daemon.connect()
        try:
            c.login_ok("bob", "bob-pw")
        except Closed:
            c = None
            assert time.monotonic() < until, "no place came free"
    assert a.who() == ["alice", "bob"]


def _guess(c, user="alice", until=None):
    """
    One wrong LOGIN on c: True if answered, False if c was closed, None
    if no answer came before until.
    """
    try:
        n = c.hello()
        c.send("LOGIN %s %s" % (user, login_proof("wrong", n)))
        r = c.reply(until)
    except Closed:
        return False
    except AssertionError as e:
        if "BYE" in str(e):
            return False
        if "deadline" in str(e):
            return None
        raise
    assert r.text == "ERR LOGIN login failed", r
    return True


@pytest.mark.slow
def test_login_guessing_rate_with_defaults(daemon):
    """
    An attacker from one address guesses alice's password as fast as the
    daemon lets it, with the default penalties, for SPAN seconds.  The
    first penalty_grace guesses are free; then each costs twice the one
    before (from 1 s), up to 60 s: in SPAN seconds that is 8 guesses,
    and one a minute in the long run.
    """
    span = 20.0
    t0 = time.monotonic()
    times = []
    c = None
    while time.monotonic() - t0 < span:
        if c is None:
            c = connect_from(daemon, "127.0.0.3",
                             timeout=span + relayproto.WAIT)
        got = _guess(c, until=t0 + span)
        if got is None:
            break
        if got:
            times.append(time.monotonic() - t0)
            continue
        c.close()
        c = None
        time.sleep(0.05)        # the attacker's own pacing
    rate = len(times) / span
    print("login guesses answered in %.0f s: %d (%.2f/s) at %s" %
          (span, len(times), rate, ["%.1f" % t for t in times]))
    assert 6 <= len(times) <= 8, times
    gaps = [b - a for a, b in zip(times[3:], times[4:])]
    assert all(g2 > g1 * 1.5 for g1, g2 in zip(gaps, gaps[1:])), gaps
    # Meanwhile another address is not held up.
    b = connect_from(daemon, "127.0.0.2")
    t1 = time.monotonic()
    b.login_ok("bob", "bob-pw")
    assert time.monotonic() - t1 < 1.0 * relayproto.SCALE


@pytest.mark.relayd(options={"penalty_grace": 1, "penalty_min": 200,
                             "penalty_max": 400})
def test_login_held_then_answered(daemon):
    c = connect_from(daemon, "127.0.0.3")
    assert _guess(c)                            # free
    assert _guess(c)                            # free, then 200 ms
    t0 = time.monotonic()
    assert _guess(c)                            # held 200 ms, then 400 ms
    assert time.monotonic() - t0 >= 0.18
    c.expect_bye("too many failed logins")
    # The right password is held just the same while the penalty lasts
    # (so that timing says nothing), and then it is let in.
    mark = daemon.log_mark()
    d = connect_from(daemon, "127.0.0.3")
    frames = d.until_closed()
    assert frames == [], frames                 # refused: penalised
    daemon.wait_log(r"refused: 127\.0\.0\.3 is under a penalty", since=mark)
    until = relayproto.deadline()
    while True:
        d = connect_from(daemon, "127.0.0.3")
        try:
            d.login_ok("alice", "alice-pw")
            break
        except Closed:
            assert time.monotonic() < until
            time.sleep(0.05)


@pytest.mark.relayd(options={"penalty_grace": 0, "penalty_min": 60000,
                             "penalty_user_max": 0, "login_grace": 5})
def test_login_refused_when_penalty_outlasts_grace(daemon):
    c = connect_from(daemon, "127.0.0.3")
    n = c.hello()
    # Two LOGINs pipelined: the first fails and costs 60 s, which the
    # second, on the same connection, would have to wait: refused.
    c.send("LOGIN alice %s" % login_proof("nope", n))
    assert c.reply().text == "ERR LOGIN login failed"
    n = c.hello()
    c.send("LOGIN alice %s" % login_proof("alice-pw", n))
    c.expect_bye("too many failed logins")


@pytest.mark.relayd(options={"penalty_grace": 2})
def test_wrong_head_penalised(daemon):
    mark = daemon.log_mark()
    c = connect_from(daemon, "127.0.0.3")
    for _ in range(3):
        c.send_bad("PING", head="0" * 32)
    c.expect_bye("too many invalid frames")
    daemon.wait_log(r"127\.0\.0\.3 penalised", since=mark)
    c = connect_from(daemon, "127.0.0.3")
    assert c.until_closed() == []
    # Other addresses are not.
    connect_from(daemon, "127.0.0.2").login_ok("bob", "bob-pw")


@pytest.mark.relayd(options={"frame_rate": 10, "frame_burst": 20})
def test_frame_flood(daemon):
    c = daemon.login("alice")            # 2 frames of the burst
    c.send_raw(b"".join(c.frame("PING f%d" % i) for i in range(100)))
    frames = c.until_closed()
    pongs = [f for f in frames if f.verb == "PONG"]
    assert 17 <= len(pongs) <= 22, len(pongs)
    assert frames[-1].text == "BYE too many frames", frames[-3:]


@pytest.mark.relayd(options={"frame_rate": 50, "frame_burst": 5})
def test_frame_rate_below_limit_is_fine(daemon):
    c = daemon.login("alice")
    until = time.monotonic() + 1.0
    n = 0
    while time.monotonic() < until:
        c.ping("p%d" % n)
        n += 1
        time.sleep(0.05)       # the client's own pace: 20 frames a second
    assert n >= 10
