"""
hardening.py: helpers for the hardening cases (test_07_*): the fault-test
build of the daemon, a worker's pid from the hub's log, a process's CPU
time, running relayd under resource limits or as another user, and
clients from another loopback source address.
"""

import os
import pwd
import re
import socket
import time

import pytest

import relayproto
from conftest import BUILD, Daemon

HOOK_RELAYD = os.path.join(BUILD, "tests", "relayd-hook")
IS_ROOT = os.geteuid() == 0


def use_binary(d, path, prefix=()):
    """Make Daemon d run path (after prefix, e.g. prlimit) for relayd."""
    orig = Daemon.argv

    def argv(options=None):
        a = orig(d, options)
        return list(prefix) + [path] + a[1:]
    d.argv = argv
    return d


def hook_daemon(factory, **kw):
    """A daemon from build/tests/relayd-hook (skipped if not built)."""
    if not os.access(HOOK_RELAYD, os.X_OK):
        pytest.skip("%s is not built (make %s)" % (HOOK_RELAYD,
                                                   HOOK_RELAYD))
    d = factory(start=False, **kw)
    d.expect_sigsys = True
    use_binary(d, HOOK_RELAYD)
    return d.start()


def worker_pid(d, client, mark=0):
    """The pid of the worker serving client, from the hub's log."""
    port = client.sock.getsockname()[1]
    m = d.wait_log(r"connection from 127\.0\.0\.[0-9]+:%d \(worker "
                   r"([0-9]+)\)" % port, since=mark)
    return int(m.group(1))


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def wait_for(cond, what, timeout=None):
    """Poll cond() until it is true, or fail at the deadline."""
    until = relayproto.deadline(timeout)
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > until:
            raise AssertionError("never happened: %s" % what)
        time.sleep(0.02)


def connect_from(d, src, **kw):
    """A Client of d whose socket is bound to the source address src."""
    real = socket.socket

    def bound(*a, **k):
        s = real(*a, **k)
        s.bind((src, 0))
        return s
    relayproto.socket.socket = bound
    try:
        return d.connect(**kw)
    finally:
        relayproto.socket.socket = real


def closed_at_once(d, until=None):
    """True if a new connection to d is closed without a word."""
    c = d.connect()
    try:
        frames = c.until_closed(until)
        return frames == []
    finally:
        c.close()


def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody to run relayd as")


def count_procs(uid):
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.stat("/proc/" + p).st_uid == uid:
                n += 1
        except OSError:
            pass
    return n


PEER_RE = re.compile(r"connection from ([0-9.]+):([0-9]+) \(worker "
                     r"([0-9]+)\)")
