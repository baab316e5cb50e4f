"""
relayproto.py: an independent client for protocol v1 of relay, written from
protocol-v1.md on top of Python's cryptography.fernet, so that a bug shared
by the C code of the daemon and its library cannot hide from the tests.

It speaks frames (one Fernet token and LF), numbers its frames (SEQ), and
checks every frame the server sends as strictly as the protocol allows:
canonical token, TTL, HEAD, the next SEQ, the shape of each reply and push,
and that replies come one per command in the order the commands were sent.
Anything else raises ProtocolViolation (an AssertionError, so a test fails).

Every wait takes a deadline (an absolute time.monotonic() value); nothing
here sleeps to wait for the server.
"""

import base64
import collections
import hashlib
import hmac
import os
import re
import select
import socket
import struct
import time

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import padding as sympadding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PROTO = "relay/1"
FRAME_MAX = 65536
BODY_MAX = 32768
TTL = 120
FUTURE_SKEW = 60

# Default time to wait for the daemon: generous, the CI machine is loaded
# and may run the daemon under sanitizers.
SCALE = float(os.environ.get("RELAY_TEST_SCALE", "1"))
WAIT = 20.0 * SCALE
SILENCE = 0.5

USER_RE = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,31}")
ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
TOKEN_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
VERB_RE = re.compile(r"[A-Z]{1,16}")
SEQ_RE = re.compile(r"[1-9][0-9]*")
TIME_RE = re.compile(r"0|[1-9][0-9]*")
NONCE_RE = re.compile(r"[0-9a-f]{32}")
B64_RE = re.compile(rb"[A-Za-z0-9_-]*={0,2}")

REPLIES = ("OK", "ERR", "HELLO", "PONG")
_N = r"(0|[1-9][0-9]*)"
_U = r"[a-z0-9_][a-z0-9_.-]{0,31}"
OK_SHAPES = {
    "LOGIN": re.compile(r"LOGIN " + _N),
    "SAY": re.compile(r"SAY"),
    "COMPOSE": re.compile(r"COMPOSE [A-Za-z0-9._-]{1,64}"),
    "READ": re.compile(r"READ " + _N),
    "ACK": re.compile(r"ACK [A-Za-z0-9._-]{1,64}"),
    "WHO": re.compile(r"WHO %s( %s)*" % (_N, _U)),
    "EXIT": re.compile(r"EXIT"),
}
PUSHES = ("SAY", "MSG", "RECEIPT", "KEY", "BYE")
CLIENT_VERBS = ("HELLO", "LOGIN", "SAY", "COMPOSE", "READ", "ACK", "WHO",
                "PING", "EXIT")


class ProtocolViolation(AssertionError):
    """The server sent something protocol-v1.md does not allow."""


class Closed(AssertionError):
    """The connection ended while a frame was awaited."""

    def __init__(self, msg, partial=b""):
        super().__init__(msg)
        self.partial = partial


def deadline(seconds=None):
    return time.monotonic() + (WAIT if seconds is None else seconds)


def head_of(secret):
    return hashlib.md5(secret.encode("ascii")).hexdigest()


def md5_hex(password):
    return hashlib.md5(password.encode("utf-8")).hexdigest()


def login_proof(password, nonce):
    """HMAC-SHA256, key = ASCII of the MD5 hex of the password, msg = nonce."""
    return hmac.new(md5_hex(password).encode("ascii"), nonce.encode("ascii"),
                    hashlib.sha256).hexdigest()


def canonical_b64(line):
    """True if line is canonical URL-safe base64 with = padding."""
    if not B64_RE.fullmatch(line) or len(line) % 4 != 0:
        return False
    try:
        raw = base64.urlsafe_b64decode(line)
    except ValueError:
        return False
    return base64.urlsafe_b64encode(raw) == line


def make_token(key, plain, at_time=None, version=0x80, pad=True, iv=None):
    """
    A Fernet token built by hand (not through Fernet), so tests can make
    tokens whose MAC verifies but whose version or padding is wrong.
    """
    raw_key = base64.urlsafe_b64decode(key)
    sign, enc = raw_key[:16], raw_key[16:]
    if at_time is None:
        at_time = int(time.time())
    if iv is None:
        iv = os.urandom(16)
    if pad:
        p = sympadding.PKCS7(128).padder()
        data = p.update(plain) + p.finalize()
    else:
        data = plain
    e = Cipher(algorithms.AES(enc), modes.CBC(iv)).encryptor()
    ct = e.update(data) + e.finalize()
    body = struct.pack(">BQ", version, at_time) + iv + ct
    mac = hmac.new(sign, body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(body + mac)


class Frame:
    """One decrypted, checked frame from the server."""

    def __init__(self, seq, verb, args, line):
        self.seq = seq
        self.verb = verb
        self.args = args            # everything after "VERB ", or ""
        self.line = line            # the token, for the record
        self.text = verb + (" " + args if args else "")

    def fields(self, n):
        """ARGS split into at most n fields, the last being the rest."""
        return self.args.split(" ", n - 1) if self.args else []

    @property
    def is_reply(self):
        return self.verb in REPLIES

    def __repr__(self):
        t = self.text if len(self.text) < 120 else self.text[:117] + "..."
        return "<Frame %d %r>" % (self.seq, t)


def _check_time(t, what):
    if not TIME_RE.fullmatch(t):
        raise ProtocolViolation("%s: bad TIME %r" % (what, t))
    if abs(int(t) - time.time()) > 600:
        raise ProtocolViolation("%s: TIME %s far from our clock" % (what, t))


def _check_body(b, what):
    if len(b) == 0 or "\0" in b:
        raise ProtocolViolation("%s: bad BODY %r" % (what, b[:40]))
    if len(b.encode("utf-8")) > BODY_MAX:
        raise ProtocolViolation("%s: BODY longer than %d" % (what, BODY_MAX))


def check_shape(f):
    """The fields of each server verb, as protocol-v1.md gives them."""
    v, a = f.verb, f.args
    if v == "OK":
        p = a.split(" ")
        if not VERB_RE.fullmatch(p[0]):
            raise ProtocolViolation("OK with bad VERB: %r" % f.text)
        shape = OK_SHAPES.get(p[0])
        if shape is not None and not shape.fullmatch(a):
            raise ProtocolViolation("bad OK %s: %r" % (p[0], f.text[:100]))
    elif v == "ERR":
        p = a.split(" ", 1)
        if len(p) != 2 or not VERB_RE.fullmatch(p[0]) or p[1] == "":
            raise ProtocolViolation("ERR without VERB TEXT: %r" % f.text)
    elif v == "HELLO":
        p = a.split(" ")
        if len(p) != 2 or p[0] != PROTO or not NONCE_RE.fullmatch(p[1]):
            raise ProtocolViolation("bad HELLO reply: %r" % f.text)
    elif v == "PONG":
        if a and not TOKEN_RE.fullmatch(a):
            raise ProtocolViolation("bad PONG: %r" % f.text)
    elif v == "SAY":
        p = a.split(" ", 2)
        if len(p) != 3 or not USER_RE.fullmatch(p[0]):
            raise ProtocolViolation("bad SAY push: %r" % f.text[:100])
        _check_time(p[1], "SAY")
        _check_body(p[2], "SAY")
    elif v == "MSG":
        p = a.split(" ", 3)
        if (len(p) != 4 or not ID_RE.fullmatch(p[0])
                or not USER_RE.fullmatch(p[1])):
            raise ProtocolViolation("bad MSG push: %r" % f.text[:100])
        _check_time(p[2], "MSG")
        _check_body(p[3], "MSG")
    elif v == "RECEIPT":
        p = a.split(" ")
        if (len(p) != 4 or not ID_RE.fullmatch(p[0])
                or not ID_RE.fullmatch(p[1]) or not USER_RE.fullmatch(p[2])):
            raise ProtocolViolation("bad RECEIPT push: %r" % f.text)
        _check_time(p[3], "RECEIPT")
    elif v == "KEY":
        if not (len(a) == 44 and canonical_b64(a.encode("ascii"))):
            raise ProtocolViolation("bad KEY push: %r" % f.text)
    elif v == "BYE":
        if a == "":
            raise ProtocolViolation("BYE without TEXT")
    else:
        raise ProtocolViolation("server sent unknown verb: %r" % f.text[:100])


class Client:
    """
    One connection to relayd.  send()/frame() number the frames and keep a
    queue of the verbs that await a final reply; every server frame is read
    by _read_frame(), which checks it and sorts it into replies or pushes.
    """

    def __init__(self, host, port, key, secret, timeout=None, rcvbuf=None,
                 strict=True):
        self.key = key
        self.fernet = Fernet(key)
        self.head = head_of(secret)
        self.seq_out = 0            # SEQ of the last frame sent
        self.seq_in = 0             # SEQ of the last frame received
        self.pending = collections.deque()  # verbs awaiting a final reply
        self.replies = collections.deque()  # replies read, not yet taken
        self.pushes = []                    # pushes read, not yet taken
        self.received = []                  # every frame, in order
        self.sent = []                      # every line sent
        self.rbuf = bytearray()
        self.eof = False
        self.strict = strict
        self.nonce = None
        self.user = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT if timeout is None else timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- sending ----

    def plaintext(self, text, seq=None, head=None):
        """HEAD SP SEQ SP text, as bytes (text may be str or bytes)."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        h = (self.head if head is None else head).encode("ascii")
        s = (str(self.seq_out + 1) if seq is None else str(seq)).encode()
        return h + b" " + s + (b" " + text if text is not None else b"")

    def token(self, plain, key=None, at_time=None):
        f = self.fernet if key is None else Fernet(key)
        if at_time is None:
            return f.encrypt(plain)
        return f.encrypt_at_time(plain, int(at_time))

    @staticmethod
    def expected_verb(text):
        """The VERB a valid frame with this text is answered for."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        try:
            s = text.decode("utf-8")
        except UnicodeDecodeError:
            return "NONE"
        v = s.split(" ", 1)[0]
        return v if VERB_RE.fullmatch(v) else "NONE"

    def frame(self, text, at_time=None):
        """A valid frame for text ("VERB ARGS"): uses up the next SEQ."""
        line = self.token(self.plaintext(text), at_time=at_time) + b"\n"
        self.seq_out += 1
        self.pending.append(self.expected_verb(text))
        return line

    def send(self, text, at_time=None):
        line = self.frame(text, at_time=at_time)
        self.send_raw(line)
        return line

    def bad_frame(self, text="PING", seq=None, head=None, key=None,
                  at_time=None, plain=None):
        """
        A frame that must fail validity (the caller says how): it uses up
        no SEQ and awaits no reply.  plain replaces the whole plaintext.
        """
        if plain is None:
            plain = self.plaintext(text, seq=seq, head=head)
        return self.token(plain, key=key, at_time=at_time) + b"\n"

    def send_bad(self, *a, **kw):
        line = self.bad_frame(*a, **kw)
        self.send_raw(line)
        return line

    def send_raw(self, data):
        self.sent.append(data)
        self.sock.sendall(data)

    # ---- receiving ----

    def _fill(self, until):
        """One recv into rbuf; False if nothing came before until."""
        if self.eof:
            raise Closed("connection closed by server", bytes(self.rbuf))
        left = until - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, ConnectionAbortedError):
            data = b""
        if data == b"":
            self.eof = True
            raise Closed("connection closed by server", bytes(self.rbuf))
        self.rbuf += data
        return True

    def _line(self, until):
        while True:
            i = self.rbuf.find(b"\n")
            if i >= 0:
                line = bytes(self.rbuf[:i + 1])
                del self.rbuf[:i + 1]
                return line
            if len(self.rbuf) >= FRAME_MAX:
                raise ProtocolViolation("server line longer than %d bytes"
                                        % FRAME_MAX)
            if not self._fill(until):
                return None

    def _decode(self, line):
        if len(line) > FRAME_MAX:
            raise ProtocolViolation("server frame of %d bytes" % len(line))
        tok = line[:-1]
        if tok.endswith(b"\r"):
            if self.strict:
                raise ProtocolViolation("server sent CR LF")
            tok = tok[:-1]
        if not canonical_b64(tok):
            raise ProtocolViolation("server line is not a canonical token: %r"
                                    % tok[:80])
        try:
            plain = self.fernet.decrypt_at_time(tok, TTL, int(time.time()))
        except InvalidToken:
            raise ProtocolViolation("server token does not verify (or TTL): %r"
                                    % tok[:80])
        try:
            s = plain.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("server plaintext is not UTF-8: %r"
                                    % plain[:80])
        p = s.split(" ", 3)
        if len(p) < 3:
            raise ProtocolViolation("server plaintext too short: %r" % s[:80])
        if p[0] != self.head:
            raise ProtocolViolation("server HEAD wrong: %r" % p[0])
        if not SEQ_RE.fullmatch(p[1]) or int(p[1]) != self.seq_in + 1:
            raise ProtocolViolation("server SEQ %r, expected %d"
                                    % (p[1], self.seq_in + 1))
        if not VERB_RE.fullmatch(p[2]):
            raise ProtocolViolation("server VERB bad: %r" % p[2])
        self.seq_in += 1
        f = Frame(self.seq_in, p[2], p[3] if len(p) > 3 else "", tok)
        if len(p) > 3 and p[3] == "":
            raise ProtocolViolation("server frame with trailing SP: %r" % s)
        check_shape(f)
        return f

    def _match_reply(self, f):
        """A reply must answer the oldest command still awaiting one."""
        if not self.pending:
            raise ProtocolViolation("unsolicited reply %r" % f)
        want = self.pending.popleft()
        if f.verb == "HELLO":
            ok = want == "HELLO"
        elif f.verb == "PONG":
            ok = want == "PING"
        else:
            got = f.args.split(" ", 1)[0]
            ok = got == want
            if want in ("HELLO", "PING") and f.verb == "OK":
                ok = False
        if not ok:
            raise ProtocolViolation("reply %r does not answer %s (in order)"
                                    % (f, want))

    def _read_frame(self, until):
        """Read, check and sort one frame.  None at the deadline."""
        while True:
            line = self._line(until)
            if line is None:
                return None
            if line in (b"\n", b"\r\n"):
                if self.strict:
                    raise ProtocolViolation("server sent an empty line")
                continue
            f = self._decode(line)
            self.received.append(f)
            if f.is_reply:
                self._match_reply(f)
                self.replies.append(f)
            else:
                self.pushes.append(f)
            return f

    def recv_frame(self, until=None):
        """The next frame read from the wire (reply or push), or fail."""
        until = deadline() if until is None else until
        f = self._read_frame(until)
        if f is None:
            raise AssertionError("no frame from server before the deadline")
        if f.is_reply:
            self.replies.remove(f)
        else:
            self.pushes.remove(f)
        return f

    def reply(self, until=None):
        """The next final reply; pushes on the way stay in self.pushes."""
        until = deadline() if until is None else until
        while not self.replies:
            f = self._read_frame(until)
            if f is None:
                raise AssertionError("no reply before the deadline "
                                     "(awaiting %s)" % list(self.pending))
            if f.verb == "BYE":
                raise AssertionError("BYE %r while awaiting a reply"
                                     % f.args)
        return self.replies.popleft()

    def push(self, pattern, until=None):
        """The first push whose text matches pattern (re.fullmatch)."""
        until = deadline() if until is None else until
        rx = re.compile(pattern, re.S)
        while True:
            for f in self.pushes:
                if rx.fullmatch(f.text):
                    self.pushes.remove(f)
                    return f
            if self._read_frame(until) is None:
                raise AssertionError("no push matching %r before the "
                                     "deadline; pushes %r" %
                                     (pattern, self.pushes[-5:]))

    def next_push(self, until=None):
        """The oldest push not yet taken (read one if none is queued)."""
        until = deadline() if until is None else until
        while not self.pushes:
            if self._read_frame(until) is None:
                raise AssertionError("no push before the deadline")
        return self.pushes.pop(0)

    def expect(self, pattern, until=None):
        """
        The first frame (reply or push) whose text matches pattern;
        frames that do not match are kept in their queues.
        """
        until = deadline() if until is None else until
        rx = re.compile(pattern, re.S)
        while True:
            for q in (self.replies, self.pushes):
                for f in q:
                    if rx.fullmatch(f.text):
                        q.remove(f)
                        return f
            if self._read_frame(until) is None:
                raise AssertionError("nothing matching %r before the "
                                     "deadline; replies %r pushes %r" %
                                     (pattern, list(self.replies),
                                      self.pushes[-5:]))

    def poll(self):
        """Take in whatever frames have already arrived (no waiting)."""
        while True:
            try:
                if self._read_frame(time.monotonic() + 0.001) is None:
                    return
            except Closed:
                return

    def assert_silent(self, wait=SILENCE):
        """Nothing arrives for a short bounded time and the link stays up."""
        until = time.monotonic() + wait
        f = self._read_frame(until)
        if f is not None:
            raise AssertionError("server sent %r, expected silence" % f)
        assert not self.replies, "unexpected replies %r" % list(self.replies)

    def probe(self, token="probe"):
        """
        PING with the next SEQ; the very next frame must be its PONG.  After
        dropped frames this proves they used up no SEQ (ours or the
        server's) and got no answer.
        """
        assert not self.replies, "unread replies %r" % list(self.replies)
        n = len(self.pushes)
        self.send("PING " + token)
        r = self.reply()
        assert r.text == "PONG " + token, r
        assert len(self.pushes) == n, \
            "pushes before PONG: %r" % self.pushes[n:]
        return r

    def until_closed(self, until=None, allow_partial=False):
        """
        Every frame up to the server's close; fails if the link is still
        open at the deadline.  A trailing partial line is allowed only if
        asked for (a consumer cut off for being slow).
        """
        until = deadline() if until is None else until
        frames = []
        while True:
            try:
                f = self._read_frame(until)
            except Closed as e:
                if e.partial and not allow_partial:
                    raise ProtocolViolation("partial frame before close: %r"
                                            % e.partial[:80])
                return frames
            if f is None:
                raise AssertionError("server did not close before the "
                                     "deadline; got %r" % frames[-5:])
            frames.append(f)

    def expect_bye(self, text, until=None):
        """
        The server closes, and the last frame it sent (perhaps already
        taken in by poll()) is BYE text, its only BYE.  The frames read on
        the way are returned.
        """
        frames = self.until_closed(until)
        last = self.received[-1] if self.received else None
        assert last is not None and last.verb == "BYE", \
            "expected BYE %r before close, got %r" % (text,
                                                     self.received[-5:])
        assert last.args == text, last
        byes = [f for f in self.received if f.verb == "BYE"]
        assert len(byes) == 1, "several BYEs: %r" % byes
        if last in self.pushes:
            self.pushes.remove(last)
        return frames

    # ---- commands ----

    def command(self, text, until=None):
        assert not self.replies, "unread replies %r" % list(self.replies)
        self.send(text)
        return self.reply(until)

    def hello(self, version=PROTO):
        r = self.command("HELLO " + version)
        assert r.verb == "HELLO", r
        self.nonce = r.fields(2)[1]
        return self.nonce

    def login(self, user, password, nonce=None):
        """HELLO (unless nonce is given) then LOGIN; the reply frame."""
        if nonce is None:
            nonce = self.hello()
        r = self.command("LOGIN %s %s" % (user, login_proof(password, nonce)))
        if r.verb == "OK":
            self.user = user
        return r

    def login_ok(self, user, password):
        r = self.login(user, password)
        m = re.fullmatch(r"OK LOGIN (0|[1-9][0-9]*)", r.text)
        assert m, "login of %s failed: %r" % (user, r)
        return int(m.group(1))

    def say(self, body):
        return self.command("SAY " + body)

    def compose(self, user, body):
        return self.command("COMPOSE %s %s" % (user, body))

    def compose_ok(self, user, body):
        r = self.compose(user, body)
        m = re.fullmatch(r"OK COMPOSE (\S+)", r.text)
        assert m and ID_RE.fullmatch(m.group(1)), r
        return m.group(1)

    def read(self, until=None):
        """
        READ: the MSG/RECEIPT frames that come between the command and
        OK READ COUNT, checked against COUNT.  Pushes that arrived before
        are taken in first and left in self.pushes.
        """
        self.poll()
        assert not self.replies and not self.pending
        before = len(self.received)
        self.send("READ")
        r = self.reply(until)
        m = re.fullmatch(r"OK READ (0|[1-9][0-9]*)", r.text)
        assert m, r
        items = [f for f in self.received[before:]
                 if f.verb in ("MSG", "RECEIPT")]
        for f in items:
            self.pushes.remove(f)
        assert len(items) == int(m.group(1)), \
            "READ listed %d items but said %s" % (len(items), m.group(1))
        return items

    def ack(self, ident):
        return self.command("ACK " + ident)

    def who(self):
        r = self.command("WHO")
        p = r.text.split(" ")
        assert p[:2] == ["OK", "WHO"] and len(p) >= 3, r
        assert TIME_RE.fullmatch(p[2]) and int(p[2]) == len(p) - 3, r
        return p[3:]

    def ping(self, token=None):
        r = self.command("PING" + ("" if token is None else " " + token))
        assert r.text == "PONG" + ("" if token is None else " " + token), r
        return r

    def exit(self, until=None):
        """EXIT: OK EXIT, then the server closes with no BYE."""
        r = self.command("EXIT", until)
        assert r.text == "OK EXIT", r
        rest = self.until_closed(until)
        assert rest == [], "frames after OK EXIT: %r" % rest


def marker(sender, receivers, body="marker"):
    """
    sender SAYs body; for each receiver the next push must be that SAY.
    Pushes caused by one session arrive in the order its commands were
    processed, so this proves that an earlier command of sender pushed
    nothing to them, with no waiting for silence.
    """
    r = sender.command("SAY " + body)
    assert r.text == "OK SAY", r
    for c in receivers:
        f = c.next_push()
        assert f.verb == "SAY" and f.fields(3)[0] == sender.user and \
            f.fields(3)[2] == body, "push before the marker: %r" % f


def msg_fields(f):
    """MSG ID FROM TIME BODY -> (id, from, time, body)."""
    assert f.verb == "MSG", f
    i, frm, t, body = f.fields(4)
    return i, frm, int(t), body


def receipt_fields(f):
    """RECEIPT ID MSGID READER TIME -> (id, msgid, reader, time)."""
    assert f.verb == "RECEIPT", f
    i, mid, reader, t = f.fields(4)
    return i, mid, reader, int(t)
