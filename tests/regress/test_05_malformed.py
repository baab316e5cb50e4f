"""
05 malformed: every validity rule of protocol-v1.md (a frame that fails one
is dropped in silence and uses up no SEQ; 3 in a row end the connection),
oversized lines, and the ERR answers to valid frames that are malformed.

Silence is shown by a probe: right after the bad frame a PING with the SEQ
the dropped frame would have had, whose PONG must be the very next frame
(so the drop answered nothing and used up no SEQ on either side).
"""

import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import time

import pytest
from cryptography.fernet import Fernet

from relayproto import (FRAME_MAX, Closed, deadline, head_of, make_token,
                        marker)


def dropped(c, line, token="probe"):
    """Send line; it must be dropped in silence."""
    c.send_raw(line)
    c.probe(token)


def err(r, verb, text=None):
    assert r.verb == "ERR", r
    if text is None:
        assert re.fullmatch(verb + r" \S.*", r.args, re.S), r
    else:
        assert r.args == verb + " " + text, r


# ---- the token ----

def test_wrong_key(daemon):
    c = daemon.connect()
    dropped(c, c.bad_frame("PING k", key=Fernet.generate_key()))
    a = daemon.login("alice")
    dropped(a, a.bad_frame("SAY under another key",
                           key=Fernet.generate_key()))


def test_wrong_secret(daemon):
    c = daemon.connect()
    dropped(c, c.bad_frame("PING s", head=head_of("1234")))
    dropped(c, c.bad_frame("PING s", head=c.head.upper()))
    dropped(c, c.bad_frame("PING s", head=c.head[:-1]))
    dropped(c, c.bad_frame("PING s", head=c.head + "0"))


def test_wrong_secret_never_answered_even_hello(daemon):
    c = daemon.connect()
    c.send_raw(c.bad_frame("HELLO relay/1", head=head_of("0000")))
    c.send_raw(c.bad_frame("EXIT", head=head_of("0000")))
    c.send_raw(c.bad_frame("PING x", head=head_of("0000")))
    # The third wrong frame in a row ends the connection.
    c.expect_bye("too many invalid frames")


def test_tampered_token(daemon):
    c = daemon.connect()
    line = bytearray(c.bad_frame("PING t", seq=1))
    # Flip one byte of the MAC, of the ciphertext, of the timestamp.
    raw = bytearray(base64.urlsafe_b64decode(bytes(line[:-1])))
    for pos in (len(raw) - 1, 30, 5):
        bad = bytearray(raw)
        bad[pos] ^= 1
        dropped(c, base64.urlsafe_b64encode(bytes(bad)) + b"\n")


def test_mac_ok_but_wrong_version(daemon):
    c = daemon.connect()
    dropped(c, make_token(c.key, c.plaintext("PING v"), version=0x81) +
            b"\n")


def test_mac_ok_but_bad_padding(daemon):
    c = daemon.connect()
    plain = c.plaintext("PING p")
    plain = plain + b"\0" * (-len(plain) % 16 or 16)
    dropped(c, make_token(c.key, plain, pad=False) + b"\n")


def test_mac_ok_but_no_ciphertext(daemon):
    c = daemon.connect()
    raw_key = base64.urlsafe_b64decode(c.key)
    body = struct.pack(">BQ", 0x80, int(time.time())) + os.urandom(16)
    mac = hmac.new(raw_key[:16], body, hashlib.sha256).digest()
    dropped(c, base64.urlsafe_b64encode(body + mac) + b"\n")


def test_hand_made_token_accepted(daemon):
    # The hand-made token of the tests above is right when it should be.
    c = daemon.connect()
    c.send_raw(make_token(c.key, c.plaintext("PING handmade")) + b"\n")
    c.seq_out += 1
    c.pending.append("PING")
    assert c.reply().text == "PONG handmade"


# ---- timestamps ----

def _wait_early_in_second():
    """Poll (short sleeps) until the wall clock is early in a second."""
    until = time.monotonic() + 5
    while time.time() % 1 > 0.3 and time.monotonic() < until:
        time.sleep(0.01)


def _race(c, offset, tries=8):
    """
    Send a PING whose token time is (now + offset), and right after it a
    probe PING with the same SEQ: exactly one of the two passes.  True if
    the timed one passed.  The answer is used only when the server must
    have checked within the second in which we made the token (we saw the
    reply within that second), else we try again.
    """
    for i in range(tries):
        _wait_early_in_second()
        s = int(time.time())
        n = c.seq_out + 1
        timed = c.bad_frame("PING timed%d" % i, seq=n, at_time=s + offset)
        probe = c.bad_frame("PING probe%d" % i, seq=n)
        c.send_raw(timed + probe)
        c.seq_out += 1
        c.pending.append("PING")
        r = c.reply()
        t = time.time()
        assert r.text in ("PONG timed%d" % i, "PONG probe%d" % i), r
        c.probe("after%d" % i)          # and the other was dropped
        if int(t) == s:
            return r.text == "PONG timed%d" % i
    raise AssertionError("no conclusive try: the machine is too slow")


@pytest.mark.relayd(options={"ttl": 5})
def test_ttl_exact_boundary(daemon):
    c = daemon.connect()
    assert _race(c, -5) is True, "a token exactly TTL old must pass"
    # One second older: dropped, whatever the timing.
    dropped(c, c.bad_frame("PING old", at_time=int(time.time()) - 6))
    dropped(c, c.bad_frame("PING older", at_time=int(time.time()) - 120))
    # Younger than the TTL passes.
    c.send("PING young", at_time=int(time.time()) - 3)
    assert c.reply().text == "PONG young"


def test_default_ttl(daemon):
    c = daemon.connect()
    assert _race(c, -120) is True, "a token exactly 120 s old must pass"
    dropped(c, c.bad_frame("PING old", at_time=int(time.time()) - 121))
    dropped(c, c.bad_frame("PING ancient", at_time=1))
    c.send("PING fine", at_time=int(time.time()) - 100)
    assert c.reply().text == "PONG fine"


def test_future_tokens(daemon):
    c = daemon.connect()
    # Exactly 60 s ahead can only look 60 s or less ahead to the server.
    c.send("PING sixty", at_time=int(time.time()) + 60)
    assert c.reply().text == "PONG sixty"
    assert _race(c, 61) is False, "a token 61 s ahead must be dropped"
    dropped(c, c.bad_frame("PING far", at_time=int(time.time()) + 90))
    dropped(c, c.bad_frame("PING farther", at_time=2 ** 63))
    c.send("PING soon", at_time=int(time.time()) + 30)
    assert c.reply().text == "PONG soon"


# ---- HEAD and SEQ ----

def test_replayed_seq(daemon):
    c = daemon.connect()
    c.ping("one")                           # SEQ 1
    dropped(c, c.bad_frame("PING replay", seq=1))
    # The same bytes again (a replayed frame).
    first = c.sent[0]
    dropped(c, first)
    a = daemon.login("alice")
    b = daemon.login("bob")
    said = a.send("SAY only once")
    assert a.reply().text == "OK SAY"
    b.push(r"SAY alice \d+ only once")
    dropped(a, said)
    marker(a, [b])


def test_skipped_seq(daemon):
    c = daemon.connect()
    dropped(c, c.bad_frame("PING skip", seq=2))
    dropped(c, c.bad_frame("PING skip", seq=c.seq_out + 2))
    dropped(c, c.bad_frame("PING skip", seq=c.seq_out + 1000))


def test_first_seq_is_one(daemon):
    c = daemon.connect()
    dropped(c, c.bad_frame("PING zero", seq=0))


@pytest.mark.parametrize("form", ["0{n}", "00{n}", "+{n}", "{n}.0", "-{n}",
                                  "0x{n}", " {n}", "{n}a", "",
                                  "18446744073709551617"])
def test_seq_not_canonical(daemon, form):
    c = daemon.connect()
    c.ping()
    n = c.seq_out + 1
    dropped(c, c.bad_frame("PING odd", seq=form.format(n=n)))


@pytest.mark.parametrize("plain", [b"", b"{h}", b"{h} ", b"{h} {n}PING",
                                   b"{h}  {n} PING", b" {h} {n} PING",
                                   b"{h}\t{n} PING", b"{H} {n} PING"],
                         ids=["empty", "head-only", "head-sp", "no-sp",
                              "two-sp", "lead-sp", "tab", "upper-head"])
def test_bad_head_or_seq_layout(daemon, plain):
    c = daemon.connect()
    p = plain.replace(b"{h}", c.head.encode()) \
        .replace(b"{H}", c.head.upper().encode()) \
        .replace(b"{n}", str(c.seq_out + 1).encode())
    dropped(c, c.bad_frame(plain=p))


# ---- lines that are not tokens ----

@pytest.mark.parametrize("line", [
    b"hello world\n", b"!!!!\n", b"\xff\xfe\xfd\n", b"gAAAAA\n", b"=\n",
    b"\0\n", b"gAAAAABn\n", b"PING\n", b"\x1b[2J\n",
], ids=["words", "bangs", "binary", "short-token", "pad", "nul",
        "short-b64", "plaintext", "escape"])
def test_garbage_line(daemon, line):
    c = daemon.connect()
    dropped(c, line)


def _padded_token(c, seq=None):
    """A token that ends with '=' padding (raw length not a multiple of 3)."""
    for k in range(40):
        tok = c.bad_frame("PING " + "p" * (k + 1), seq=seq)[:-1]
        if tok.endswith(b"="):
            return tok, "p" * (k + 1)
    raise AssertionError("no padded token")


ALPHA = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
         b"0123456789-_")


def _unused_bits_set(tok):
    """tok with nonzero unused bits in its last character."""
    stripped = tok.rstrip(b"=")
    npad = len(tok) - len(stripped)
    assert npad in (1, 2)
    # The last character holds 4 (npad 1) or 2 (npad 2) bits of data
    # and zeros: adding 1 sets an unused bit and keeps the data.
    last = ALPHA.index(stripped[-1:])
    loose = stripped[:-1] + ALPHA[last + 1:last + 2] + b"=" * npad
    assert base64.urlsafe_b64decode(loose) == base64.urlsafe_b64decode(tok)
    return loose


@pytest.mark.parametrize("variant", [
    "unused-bits", "no-padding", "extra-padding", "standard-alphabet",
    "space-inside", "leading-space", "trailing-space", "tab",
    "padding-inside"])
def test_non_canonical_base64(daemon, variant):
    c = daemon.connect()
    c.ping()
    for i in range(3):                  # under the invalid limit
        tok, _ = _padded_token(c, seq=c.seq_out + 1)
        if variant == "standard-alphabet":
            # Make sure the token has a character that differs.
            while tok == base64.b64encode(base64.urlsafe_b64decode(tok)):
                tok, _ = _padded_token(c, seq=c.seq_out + 1)
        v = {
            "unused-bits": lambda t: _unused_bits_set(t),
            "no-padding": lambda t: t.rstrip(b"="),
            "extra-padding": lambda t: t + b"==",
            "standard-alphabet":
                lambda t: base64.b64encode(base64.urlsafe_b64decode(t)),
            "space-inside": lambda t: t[:20] + b" " + t[20:],
            "leading-space": lambda t: b" " + t,
            "trailing-space": lambda t: t + b" ",
            "tab": lambda t: t + b"\t",
            "padding-inside": lambda t: t[:20] + b"=" + t[21:],
        }[variant](tok)
        assert v != tok
        dropped(c, v + b"\n", "v%d" % i)
    # The canonical token itself passes.
    good, name = _padded_token(c, seq=c.seq_out + 1)
    c.send_raw(good + b"\n")
    c.seq_out += 1
    c.pending.append("PING")
    assert c.reply().text == "PONG " + name


# ---- oversized lines ----

def test_line_at_frame_limit_is_not_oversized(daemon):
    c = daemon.connect()
    # FRAME_MAX bytes with the LF: an invalid frame, not an oversized one.
    dropped(c, b"A" * (FRAME_MAX - 1) + b"\n")
    dropped(c, b"A" * (FRAME_MAX - 2) + b"\r\n")


def _send_oversized(c, data):
    try:
        c.send_raw(data)
    except (BrokenPipeError, ConnectionResetError):
        pass                # the server may close before reading it all


def test_oversized_line_bye(daemon):
    c = daemon.connect()
    c.ping()
    _send_oversized(c, b"A" * FRAME_MAX + b"\n")
    c.expect_bye("frame too long")


def test_oversized_valid_token_not_acted_on(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    # A valid SAY frame, then junk on the same line past the limit.
    line = a.bad_frame("SAY never said", seq=a.seq_out + 1)[:-1]
    _send_oversized(a, line + b"A" * (FRAME_MAX + 1 - len(line)) + b"\n")
    frames = a.expect_bye("frame too long")
    assert [f.verb for f in frames] == ["BYE"]
    b.assert_silent()
    b.probe()


def test_oversized_without_lf_is_not_buffered(daemon):
    # The line passes the limit long before its end: BYE comes without
    # the LF ever being sent (the server must not wait for it).
    c = daemon.connect()
    chunk = b"B" * 65536
    until = deadline()
    sent = 0
    while sent < 64 * 1024 * 1024:
        try:
            c.sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        except socket.timeout:
            break
        sent += len(chunk)
        c.poll()
        if c.eof or c.pushes:
            break
        assert time.monotonic() < until
    c.expect_bye("frame too long")


def test_oversized_after_good_frames(daemon):
    # Frames before the oversized line are acted on; the line is not.
    c = daemon.connect()
    data = c.frame("PING before") + b"x" * (FRAME_MAX + 10) + b"\n"
    _send_oversized(c, data)
    assert c.reply().text == "PONG before"
    c.expect_bye("frame too long")


# ---- hang-ups ----

def test_half_frame_then_hang_up(daemon):
    a = daemon.login("alice")
    c = daemon.connect()
    line = c.frame("PING half")
    c.pending.clear()
    c.send_raw(line[:len(line) // 2])
    c.close()
    # The daemon and the other sessions are unharmed.
    a.probe()
    d = daemon.connect()
    d.probe()
    assert a.who() == ["alice"]


def test_half_frame_then_shutdown_not_acted_on(daemon):
    c = daemon.connect()
    line = c.frame("PING never")
    c.pending.clear()
    c.send_raw(line[:-1])                    # the whole token but no LF
    c.sock.shutdown(socket.SHUT_WR)
    frames = c.until_closed()
    assert all(f.verb == "BYE" for f in frames), frames


def test_hang_up_mid_login(daemon):
    for i in range(10):
        c = daemon.connect()
        c.hello()
        c.send_raw(c.frame("LOGIN alice " + "0" * 64)[:30])
        c.close()
    daemon.login("alice").probe()


# ---- too many invalid frames ----

def test_three_invalid_in_a_row_bye(daemon):
    c = daemon.connect()
    c.ping()
    c.send_raw(c.bad_frame("PING 1", key=Fernet.generate_key()))
    c.send_raw(b"garbage\n")
    c.send_raw(c.bad_frame("PING 3", seq=7))
    c.expect_bye("too many invalid frames")


def test_three_invalid_after_login_bye(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    for i in range(3):
        a.send_raw(a.bad_frame("SAY bad %d" % i, head=head_of("9999")))
    a.expect_bye("too many invalid frames")
    until = deadline()
    while b.who() != ["bob"]:
        assert time.monotonic() < until
        time.sleep(0.05)


def test_valid_frame_resets_invalid_count(daemon):
    c = daemon.connect()
    for round_ in range(4):
        c.send_raw(b"junk\n")
        c.send_raw(c.bad_frame("PING x", key=Fernet.generate_key()))
        c.probe("r%d" % round_)
    # A valid but malformed frame (answered with ERR) resets it too.
    c.send_raw(b"junk\n" + c.bad_frame("PING y", seq=99))
    err(c.command("FROB"), "FROB", "unknown command")
    c.send_raw(b"junk\n" + c.bad_frame("PING y", seq=99))
    c.probe("last")


def test_empty_lines_are_not_invalid(daemon):
    c = daemon.connect()
    c.send_raw(b"\n" * 10 + b"\r\n" * 10)
    c.probe()


@pytest.mark.relayd(options={"invalid_max": 5})
def test_invalid_max_option(daemon):
    c = daemon.connect()
    c.send_raw(b"junk\n" * 4)
    c.probe()
    c.send_raw(b"junk\n" * 5)
    c.expect_bye("too many invalid frames")


# ---- valid frames that are malformed ----

@pytest.mark.parametrize("text", [b"ping", b"Ping", b"PING1", b"PI-NG",
                                  b"ABCDEFGHIJKLMNOPQ", b"", b" PING",
                                  b"\xc3\x89T\xc3\x89", b"1", b"-"],
                         ids=["lower", "mixed", "digit", "dash", "17-letters",
                              "empty", "empty-field", "non-ascii", "number",
                              "minus"])
def test_not_a_verb(daemon, text):
    c = daemon.connect()
    r = c.command(text)
    err(r, "NONE", "malformed")
    c.probe()


def test_no_verb_field_at_all(daemon):
    c = daemon.connect()
    c.send_raw(c.bad_frame(plain=("%s %d" % (c.head, c.seq_out + 1))
                           .encode()))
    c.seq_out += 1
    c.pending.append("NONE")
    err(c.reply(), "NONE", "malformed")
    c.probe()


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80",
                                 b"\xe2\x82", b"\xf4\x90\x80\x80",
                                 b"\x80abc"],
                         ids=["ff", "overlong", "surrogate", "truncated",
                              "above-max", "continuation"])
def test_not_utf8(daemon, bad):
    c = daemon.connect()
    err(c.command(b"PING " + bad), "NONE", "malformed")
    a = daemon.login("alice")
    b = daemon.login("bob")
    err(a.command(b"SAY caf" + bad + b" au lait"), "NONE", "malformed")
    err(a.command(b"COMPOSE bob " + bad), "NONE", "malformed")
    marker(a, [b])
    assert b.read() == []
    c.probe()


@pytest.mark.parametrize("verb", ["FROB", "ABCDEFGHIJKLMNOP", "KEY", "MSG",
                                  "OK", "BYE"])
def test_unknown_command(daemon, verb):
    c = daemon.connect()
    err(c.command(verb), verb, "unknown command")
    err(c.command(verb + " with args"), verb, "unknown command")
    a = daemon.login("alice")
    err(a.command(verb + " x"), verb, "unknown command")
    a.probe()


@pytest.mark.parametrize("text", [
    "READ x", "WHO x", "EXIT x", "ACK", "ACK a b", "ACK  x", "COMPOSE",
    "COMPOSE  bob hi", "COMPOSE bob", "SAY", "PING a b", "PING  a",
    "PING ", "HELLO",
])
def test_bad_arguments(daemon, text):
    a = daemon.login("alice")
    verb = text.split(" ")[0]
    r = a.command(text)
    # "ERR VERB bad arguments (or a more precise TEXT)"; HELLO after login
    # may say "already logged in" first.
    err(r, verb)
    a.probe()
    a.ping()


def test_valid_frame_after_malformed_counts_seq(daemon):
    # A malformed but valid frame uses up its SEQ (it was answered).
    c = daemon.connect()
    err(c.command("ping"), "NONE", "malformed")
    dropped(c, c.bad_frame("PING reused", seq=c.seq_out))
    c.probe()


def test_connection_closed_is_reported(daemon):
    # The client helper notices a close (guards the tests' own logic).
    c = daemon.connect()
    c.exit()
    with pytest.raises(Closed):
        c.recv_frame(deadline(2))
