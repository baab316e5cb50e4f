"""
test_fernet_interop.py: our Fernet (build/tests/fernet-tool, on fernet.c)
against Python's cryptography.fernet, both ways: Python's tokens must
decrypt in C, C's tokens must decrypt in Python, tokens tampered with
must fail in both, and the clock rules must agree at their edges.

Each way runs RELAY_INTEROP_N round trips (default 10,000) on fresh random
keys, in batches through fernet-tool's -lines modes so one process handles
a thousand messages.  Sizes cover 0..65536: the edges 0, 1, 15, 16, 17 and
65536 always, the rest spread evenly over magnitudes (log-uniform), which
keeps the run to a few seconds; RELAY_INTEROP_SIZES=uniform draws them
uniformly instead (about 300 MB each way, half a minute or more).
RELAY_INTEROP_SEED repeats a run; failures print the seed.
"""

import base64
import os
import random
import struct
import subprocess
import tempfile
import time

import pytest
from cryptography.fernet import Fernet, InvalidToken

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("RELAY_BUILD") or \
    os.path.normpath(os.path.join(HERE, "..", "..", "build"))
TOOL = os.path.join(BUILD, "tests", "fernet-tool")

N = int(os.environ.get("RELAY_INTEROP_N", "10000"))
UNIFORM = os.environ.get("RELAY_INTEROP_SIZES", "") == "uniform"
SEED = int(os.environ.get("RELAY_INTEROP_SEED") or
           random.SystemRandom().randrange(1 << 32))
BATCH = 1000
EDGES = [0, 1, 15, 16, 17, 65536]
SIZE_MAX = 65536

# fernet-tool's exit statuses for each failure kind (see its usage).
EXIT_USAGE, EXIT_KEY, EXIT_INPUT = 2, 3, 4
EXIT_BASE64, EXIT_SHORT, EXIT_VERSION, EXIT_MAC = 11, 12, 13, 14
EXIT_PADDING, EXIT_EXPIRED, EXIT_FUTURE = 15, 16, 17


@pytest.fixture(scope="module")
def tool():
    if not os.access(TOOL, os.X_OK):
        pytest.skip("fernet-tool is not built at %s (run make; "
                    "RELAY_BUILD=%s)" % (TOOL, BUILD))
    return TOOL


def run(args, data=b""):
    """Runs fernet-tool through temporary files (pipes through
    communicate() are slow for hundreds of megabytes)."""
    with tempfile.TemporaryFile() as fin, \
            tempfile.TemporaryFile() as fout, \
            tempfile.TemporaryFile() as ferr:
        fin.write(data)
        fin.seek(0)
        rc = subprocess.run([TOOL] + args, stdin=fin, stdout=fout,
                            stderr=ferr, timeout=300).returncode
        fout.seek(0)
        ferr.seek(0)
        return rc, fout.read(), ferr.read().decode("utf-8", "replace")


def sizes(rng, n):
    out = list(EDGES)
    while len(out) < n:
        if UNIFORM:
            out.append(rng.randint(0, SIZE_MAX))
        else:
            bits = rng.randint(0, 16)
            out.append(rng.randint(0, (1 << bits)))
    rng.shuffle(out)
    return out[:n]


def batches(seed):
    """(key, messages) pairs of BATCH messages, N messages in all."""
    rng = random.Random(seed)
    todo = sizes(rng, N)
    for i in range(0, len(todo), BATCH):
        key = base64.urlsafe_b64encode(rng.randbytes(32))
        yield key, [os.urandom(s) for s in todo[i:i + BATCH]]


def token_len(n):
    raw = 1 + 8 + 16 + (n // 16 + 1) * 16 + 32
    return (raw + 2) // 3 * 4


def tamper(rng, token):
    """A canonical token whose bytes differ from token's: one bit
    flipped, or bytes cut off the end, or a byte added."""
    raw = bytearray(base64.urlsafe_b64decode(token))
    how = rng.randrange(3)
    if how == 0:
        i = rng.randrange(len(raw))
        raw[i] ^= 1 << rng.randrange(8)
    elif how == 1:
        del raw[rng.randrange(len(raw)):]
    else:
        raw.insert(rng.randrange(len(raw) + 1), rng.randrange(256))
    return base64.urlsafe_b64encode(bytes(raw))


def test_python_to_c(tool):
    done = 0
    for key, msgs in batches(SEED):
        f = Fernet(key)
        tokens = b"".join(f.encrypt(m) + b"\n" for m in msgs)
        rc, out, err = run(["decrypt-lines", key.decode(), "--ttl", "60"],
                           tokens)
        assert rc == 0, "seed %d: %s" % (SEED, err)
        want = b"".join(base64.b64encode(m) + b"\n" for m in msgs)
        if out != want:
            got = out.split(b"\n")
            for i, m in enumerate(msgs):
                assert got[i] == base64.b64encode(m), \
                    "seed %d: message %d of %d bytes: %r" % \
                    (SEED, done + i, len(m), got[i][:80])
            assert out == want, "seed %d" % SEED
        done += len(msgs)
    assert done == N


def test_c_to_python(tool):
    done = 0
    ivs = set()
    for key, msgs in batches(SEED + 1):
        f = Fernet(key)
        lines = b"".join(base64.b64encode(m) + b"\n" for m in msgs)
        before = int(time.time())
        rc, out, err = run(["encrypt-lines", key.decode()], lines)
        after = int(time.time())
        assert rc == 0, "seed %d: %s" % (SEED, err)
        tokens = out.split(b"\n")
        assert tokens.pop() == b""
        assert len(tokens) == len(msgs)
        for i, (m, t) in enumerate(zip(msgs, tokens)):
            what = "seed %d: message %d of %d bytes" % \
                (SEED, done + i, len(m))
            assert f.decrypt(t, ttl=60) == m, what
            raw = base64.urlsafe_b64decode(t)
            # Canonical text, exact length, version, clock, fresh IV.
            assert base64.urlsafe_b64encode(raw) == t, what
            assert len(t) == token_len(len(m)), what
            assert raw[0] == 0x80, what
            assert before <= struct.unpack(">Q", raw[1:9])[0] <= after, \
                what
            ivs.add(raw[9:25])
        done += len(msgs)
    assert done == N
    assert len(ivs) == N, "an IV repeated"


def test_tampered_rejected_by_both(tool):
    rng = random.Random(SEED + 2)
    key = Fernet.generate_key()
    f = Fernet(key)
    msgs = [os.urandom(s) for s in [0, 1, 15, 16, 17, 100, 1000] * 30]
    # Tokens from both sides, each tampered with three times.
    py_tokens = [f.encrypt(m) for m in msgs]
    rc, out, err = run(["encrypt-lines", key.decode()],
                       b"".join(base64.b64encode(m) + b"\n" for m in msgs))
    assert rc == 0, err
    c_tokens = out.split(b"\n")[:-1]
    bad = [tamper(rng, t) for t in py_tokens + c_tokens for _ in range(3)]
    bad = [t for t in bad if t not in py_tokens and t not in c_tokens]
    assert len(bad) > 1000
    for t in bad:
        with pytest.raises(InvalidToken):
            f.decrypt(t)
    rc, out, err = run(["decrypt-lines", key.decode()],
                       b"".join(t + b"\n" for t in bad))
    assert rc == 0, err
    lines = out.split(b"\n")[:-1]
    assert len(lines) == len(bad)
    for t, line in zip(bad, lines):
        assert line.startswith(b"! "), "seed %d: accepted %r" % (SEED, t)
        status = int(line.split()[1])
        assert status in (EXIT_SHORT, EXIT_VERSION, EXIT_MAC,
                          EXIT_PADDING), line


def test_c_is_strict_where_python_is_lenient(tool):
    """Python's decoder also takes '+' and '/' for '-' and '_'; a frame
    must be canonical base64 (relay(7)), so C refuses such text, and any
    padding or byte out of place."""
    key = Fernet.generate_key()
    tokens = []
    while len(tokens) < 20:
        t = Fernet(key).encrypt(os.urandom(20))
        if b"-" in t and b"_" in t:
            tokens.append(t)
    variants = []
    for t in tokens:
        variants.append(t.replace(b"-", b"+", 1))
        variants.append(t.replace(b"_", b"/", 1))
        variants.append(t + b"=")
        variants.append(b" " + t)
    rc, out, err = run(["decrypt-lines", key.decode()],
                       b"".join(v + b"\n" for v in variants))
    assert rc == 0, err
    for v, line in zip(variants, out.split(b"\n")):
        assert line == b"! %d not canonical URL-safe base64" % EXIT_BASE64, v


def test_clock_edges_agree(tool):
    key = Fernet.generate_key()
    f = Fernet(key)
    t0 = 1700000000
    py_token = f.encrypt_at_time(b"tick", t0)
    rc, c_token, err = run(["encrypt", key.decode(), "--now", str(t0)],
                           b"tick")
    assert rc == 0, err
    c_token = c_token.rstrip(b"\n")
    cases = [(t0 + 60, 0), (t0 + 61, EXIT_EXPIRED), (t0 - 60, 0),
             (t0 - 61, EXIT_FUTURE)]
    for now, want in cases:
        for token in (py_token, c_token):
            rc, out, err = run(["decrypt", key.decode(), "--ttl", "60",
                                "--now", str(now)], token + b"\n")
            assert rc == want, (now, token, err)
            if want == 0:
                assert out == b"tick"
                assert f.decrypt_at_time(token, 60, now) == b"tick"
            else:
                assert err.count("\n") == 1, err
                with pytest.raises(InvalidToken):
                    f.decrypt_at_time(token, 60, now)


def test_tool_failures(tool):
    key = Fernet.generate_key().decode()
    other = Fernet.generate_key().decode()
    token = Fernet(key.encode()).encrypt(b"x")
    cases = [
        ([], b"", EXIT_USAGE),
        (["encrypt"], b"", EXIT_USAGE),
        (["frobnicate", key], b"", EXIT_USAGE),
        (["decrypt", key, "--iv", "00" * 16], b"", EXIT_USAGE),
        (["encrypt", key, "--iv", "00"], b"", EXIT_USAGE),
        (["decrypt", key, "--ttl", "-1"], b"", EXIT_USAGE),
        (["encrypt", key[:-1]], b"x", EXIT_KEY),
        (["encrypt", key.replace("=", "")], b"x", EXIT_KEY),
        (["encrypt", key], b"x" * (1 << 20 | 1), EXIT_INPUT),
        (["encrypt-lines", key], b"not base64!\n", EXIT_INPUT),
        (["decrypt", other], token, EXIT_MAC),
        (["decrypt", key], b"%%%%" + token[4:], EXIT_BASE64),
        (["decrypt", key], token[:40], EXIT_SHORT),
        (["decrypt", key], b"", EXIT_SHORT),
    ]
    for args, data, want in cases:
        rc, out, err = run(args, data)
        assert rc == want, (args, err)
        assert out == b"", args
        assert err.strip() != "", args
    rc, out, err = run(["genkey"])
    assert rc == 0
    assert len(out) == 45 and out.endswith(b"\n")
    Fernet(out.strip())     # Python takes the key
    rc, out, err = run(["encrypt", key], b"x" * (1 << 20))
    assert rc == 0, err
    assert Fernet(key.encode()).decrypt(out.strip()) == b"x" * (1 << 20)
