"""
test_07_faults.py: faults from outside (kill -9 of a worker or of the hub,
a full disk, no descriptors or processes left) and from inside (a worker
that writes nonsense to the hub, or makes a system call its sandbox
forbids).  Each time the daemon must go on, or come back, without losing
an acknowledged item.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import relayproto
from hardening import (IS_ROOT, closed_at_once, connect_from, count_procs,
                       cpu_seconds, hook_daemon, nobody, proc_status,
                       use_binary, wait_for, worker_pid)
from conftest import RELAYD


# ---- a worker that misbehaves (the hook build) ----

def test_forbidden_syscall_kills_only_that_worker(daemon_factory):
    d = hook_daemon(daemon_factory)
    a = d.login("alice")
    b = d.login("bob")
    pid = worker_pid(d, b)
    b.send("ZZEXEC")
    b.until_closed()
    d.wait_log(r"worker %d died of signal %d" % (pid, signal.SIGSYS))
    assert "escaped" not in d.log_text()
    wait_for(lambda: a.who() == ["alice"], "bob left WHO")
    c = d.login("carol")
    c.say("still here")
    a.push(r"SAY .*")
    assert d.running()


@pytest.mark.parametrize("verb,why", [
    ("ZZGARBAGE", "unknown record type"),
    ("ZZBIGREC", "bad record header"),
    ("ZZBADLOGIN", "bad LOGIN record"),
])
def test_garbage_on_hub_pipe(daemon_factory, verb, why):
    d = hook_daemon(daemon_factory)
    a = d.login("alice")
    b = d.login("bob")
    pid = worker_pid(d, b)
    mark = d.log_mark()
    b.send(verb)
    b.until_closed()
    d.wait_log(r"worker %d: %s; ending it" % (pid, why), since=mark)
    wait_for(lambda: a.who() == ["alice"], "bob left WHO")
    a.compose_ok("alice", "after %s" % verb)
    assert d.running()


# ---- the sandbox as seen from outside ----

def test_worker_confined(daemon):
    c = daemon.login("alice")
    pid = worker_pid(daemon, c)
    st = proc_status(pid)
    assert st["Seccomp"] == "2", st["Seccomp"]     # filter mode
    assert st["NoNewPrivs"] == "1"
    fds = sorted(int(x) for x in os.listdir("/proc/%d/fd" % pid))
    assert fds == [0, 1, 2, 3, 4, 5], fds
    if not IS_ROOT:
        daemon.wait_log(r"running as .*: no privilege separation")
        return
    import pwd
    pw = pwd.getpwnam("_relayd")
    uids = [int(x) for x in st["Uid"].split()]
    gids = [int(x) for x in st["Gid"].split()]
    assert uids == [pw.pw_uid] * 4, uids
    assert gids == [pw.pw_gid] * 4, gids
    assert st["Groups"] == str(pw.pw_gid)
    assert st["CapEff"] == "0000000000000000"
    root = os.readlink("/proc/%d/root" % pid)
    assert root == os.path.join(daemon.state, "spool"), root
    # Mail still flows inside the chroot, and survives a restart.
    ident = c.compose_ok("bob", "inside")
    b = daemon.login("bob")
    items = b.read()
    assert [f.fields(2)[0] for f in items] == [ident]


# ---- kill -9 ----

def test_kill9_worker(daemon):
    a = daemon.login("alice")
    b = daemon.login("bob")
    pid = worker_pid(daemon, b)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: a.who() == ["alice"], "bob's session left WHO")
    b.until_closed()
    c = daemon.login("carol")
    c.say("hello")
    f = a.push(r"SAY .*")
    assert f.args.endswith("hello")
    a.assert_silent()
    assert "died" not in daemon.log_text()   # SIGKILL is not news


def test_kill9_spawner(daemon):
    """The spawner is part of the daemon: without it no session could
    start, so the hub says so and stops, and every worker ends."""
    a = daemon.login("alice")
    workers = daemon.worker_pids()
    assert len(workers) == 1
    spawner = [p for p in daemon.group_pids()
               if p != daemon.proc.pid and p not in workers]
    assert len(spawner) == 1, spawner
    os.kill(spawner[0], signal.SIGKILL)
    daemon.wait_log(r"the spawner died")
    daemon.proc.wait(relayproto.WAIT)
    assert daemon.proc.returncode != 0
    a.until_closed()
    wait_for(lambda: not daemon.group_pids(), "every worker ended",
             timeout=3.0 * relayproto.SCALE)


def test_kill9_hub(daemon):
    a = daemon.login("alice")
    ids = [a.compose_ok("bob", "kept %d" % i) for i in range(5)]
    b = daemon.login("bob")
    bitems = b.read()
    assert b.ack(bitems[0].fields(2)[0]).text.startswith("OK ACK")
    acked = bitems[0].fields(2)[0]
    workers = daemon.worker_pids()
    assert len(workers) == 2
    t0 = time.monotonic()
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait(relayproto.WAIT)
    wait_for(lambda: not daemon.group_pids(), "every worker ended",
             timeout=3.0 * relayproto.SCALE)
    took = time.monotonic() - t0
    print("workers ended %.2f s after kill -9 of the hub" % took)
    assert took < 1.5 * relayproto.SCALE
    daemon.close_clients()
    daemon.start()
    b = daemon.login("bob")
    got = [f.fields(2)[0] for f in b.read() if f.verb == "MSG"]
    assert got == ids[1:]
    assert acked not in got


# ---- a full disk ----

@pytest.fixture
def small_spool(daemon_factory):
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    d = daemon_factory(start=False)
    spool = os.path.join(d.state, "spool")
    os.makedirs(spool, mode=0o700, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700",
                        "relayd-test", spool], stderr=subprocess.PIPE)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.decode().strip())
    try:
        yield d, spool
    finally:
        if d.running():
            d.close_clients()
            d.stop()
        subprocess.run(["umount", "-l", spool])


def test_disk_full(small_spool):
    d, spool = small_spool
    d.start()
    a = d.login("alice")
    b = d.login("bob")
    body = "x" * 30000
    stored = []
    for i in range(40):
        r = a.command("COMPOSE bob %d %s" % (i, body))
        if r.verb == "ERR":
            assert r.args == "COMPOSE no space left for mailboxes", r
            break
        stored.append(r.fields(2)[1])
    else:
        pytest.fail("the disk never filled")
    assert stored, "nothing fitted at all"
    # Nothing half-written is left, and every item reads back whole.
    names = os.listdir(os.path.join(spool, "bob"))
    assert not [n for n in names if n.startswith(".")], names
    got = b.read()
    assert [f.fields(2)[0] for f in got] == stored
    for f in got:
        assert f.args.endswith(body)
    # Space comes back: mail flows again.
    subprocess.run(["mount", "-o", "remount,size=4m", spool], check=True)
    ident = a.compose_ok("bob", "after")
    assert ident not in stored
    assert a.who() == ["alice", "bob"]


# ---- no descriptors, no processes ----

def _hold(d, n):
    """n connections, whatever becomes of them."""
    cs = []
    for _ in range(n):
        try:
            cs.append(d.connect(timeout=2))
        except OSError:
            break
    return cs


def test_out_of_descriptors(daemon_factory):
    d = daemon_factory(start=False, options={"max_clients_per_source": 1000})
    use_binary(d, RELAYD, ["prlimit", "--nofile=24:24", "--"])
    d.start()
    a = d.login("alice")
    mark = d.log_mark()
    held = _hold(d, 30)
    d.wait_log(r"(accept|socketpair).*(Too many open files)", since=mark)
    # The hub waits, it does not spin.
    cpu0 = cpu_seconds(d.proc.pid)
    t0 = time.monotonic()
    a.ping("alive")
    wait_for(lambda: time.monotonic() - t0 > 1.5, "time passing")
    assert cpu_seconds(d.proc.pid) - cpu0 < 0.5
    assert d.running()
    for c in held:
        c.close()
    # Recovered: a new client logs in (accepting resumes within a second).
    wait_for(lambda: len(d.worker_pids()) <= 1, "the workers ended")
    c = d.login("carol")
    assert c.who() == ["alice", "carol"]


@pytest.fixture
def open_dir():
    """A directory other users can reach (pytest's tmp_path is 0700)."""
    top = tempfile.mkdtemp(prefix="relayd-nproc-")
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def test_out_of_processes(open_dir, daemon_factory):
    pw = nobody()
    if not IS_ROOT:
        pytest.skip("needs root to run relayd as nobody "
                    "(RLIMIT_NPROC does not bind root)")
    top = open_dir
    d = daemon_factory(start=False, options={"max_clients_per_source": 1000})
    # Its own files, in a directory nobody can reach.
    d.dir = top
    for name in ("state", "key", "secret", "users"):
        src = getattr(d, {"state": "state", "key": "keyfile",
                          "secret": "secretfile", "users": "usersfile"}[name])
        dst = os.path.join(top, name)
        os.rename(src, dst)
        setattr(d, {"state": "state", "key": "keyfile",
                    "secret": "secretfile", "users": "usersfile"}[name], dst)
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    os.chown(top, pw.pw_uid, pw.pw_gid)
    # the hub, the spawner and 3 workers
    nproc = count_procs(pw.pw_uid) + 2 + 3
    use_binary(d, RELAYD, ["setpriv", "--reuid=%d" % pw.pw_uid,
                           "--regid=%d" % pw.pw_gid, "--clear-groups", "--reset-env",
                           "prlimit", "--nproc=%d:%d" % (nproc, nproc),
                           "--"])
    d.start()
    d.wait_log(r"running as nobody: no privilege separation")
    a = d.login("alice")
    mark = d.log_mark()
    held = _hold(d, 6)
    d.wait_log(r"fork: Resource temporarily unavailable", since=mark)
    ports = [int(m) for m in re.findall(
        r"fork: Resource temporarily unavailable; 127\.0\.0\.1:([0-9]+) "
        r"refused", d.log_since(mark))]
    refused = [c for c in held if c.sock.getsockname()[1] in ports]
    assert refused, "no connection was refused"
    for c in refused:
        assert c.until_closed() == []
    cpu0 = cpu_seconds(d.proc.pid)
    a.ping("alive")
    assert cpu_seconds(d.proc.pid) - cpu0 < 0.5
    for c in held:
        c.close()
    wait_for(lambda: len(d.worker_pids()) <= 1, "the workers ended")
    c = d.login("carol")
    assert c.who() == ["alice", "carol"]


# ---- not a fault, but the same fixture: a limit past which we refuse ----

@pytest.mark.relayd(options={"max_clients_per_source": 2})
def test_max_clients_per_source(daemon):
    a = daemon.login("alice")
    daemon.connect()
    mark = daemon.log_mark()
    assert closed_at_once(daemon)
    daemon.wait_log(r"refused: 2 connections from 127\.0\.0\.1 "
                    r"\(max_clients_per_source\)", since=mark)
    # Another source address is another count.
    c = connect_from(daemon, "127.0.0.2")
    c.login_ok("bob", "bob-pw")
    assert a.who() == ["alice", "bob"]
