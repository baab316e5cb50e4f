"""
bench-crypto.py BENCH: runs the C benchmark BENCH (bench-crypto.c), times
Python's cryptography.fernet on the same 100-byte message on this machine
in the same run, and prints both side by side.  Exits 1 if a target is
missed: encrypt and decrypt each under 3 microseconds, and at least 5
times as fast as Python.
"""

import subprocess
import sys
import timeit

from cryptography.fernet import Fernet

TARGET_US = 3.0
TARGET_SPEEDUP = 5.0
ROUNDS = 7


def python_us(stmt):
    """Microseconds per call of stmt: the best of ROUNDS rounds."""
    timer = timeit.Timer(stmt)
    n, t = timer.autorange()
    n = max(1, int(n * 0.2 / max(t, 1e-9)))
    return min(timer.repeat(ROUNDS, n)) / n * 1e6


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench-crypto.py BENCH")
    out = subprocess.run([sys.argv[1]], check=True, capture_output=True,
                         text=True).stdout
    c = {}
    for line in out.splitlines():
        name, us = line.split()
        c[name] = float(us)

    f = Fernet(Fernet.generate_key())
    msg = b"m" * 100
    token = f.encrypt(msg)
    py = {
        "encrypt": python_us(lambda: f.encrypt(msg)),
        "decrypt": python_us(lambda: f.decrypt(token, ttl=120)),
    }

    ok = True
    print("Fernet, 100-byte message   relay (C)    Python   speed-up")
    for op in ("encrypt", "decrypt"):
        ratio = py[op] / c[op]
        met = c[op] < TARGET_US and ratio >= TARGET_SPEEDUP
        ok = ok and met
        print("%-26s %6.2f us %7.2f us %8.1fx%s" % (
            op, c[op], py[op], ratio, "" if met else "  MISSED"))
    print("%-26s %6.2f us" % ("encrypt, fixed IV", c["encrypt_fixed_iv"]))
    print("%-26s %6.3f us" % ("16 random bytes, pool", c["random16_pool"]))
    print("%-26s %6.3f us" % ("16 random bytes, getrandom",
                               c["random16_getrandom"]))
    print("targets: under %.0f us and %.0fx Python: %s" % (
        TARGET_US, TARGET_SPEEDUP, "met" if ok else "MISSED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
