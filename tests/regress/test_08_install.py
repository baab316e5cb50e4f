"""
08 install: `make install` into a temporary DESTDIR puts the programs, the
man pages, the example relayd.conf and the systemd unit where they
belong; the unit passes `systemd-analyze verify` (where it is present);
the example is a valid configuration; `make uninstall` takes back what
install put and leaves an edited relayd.conf alone.
"""

import os
import re
import shutil
import stat
import subprocess

import pytest

import conftest

TOP = os.path.normpath(os.path.join(conftest.HERE, "..", ".."))
PREFIX = "/usr"
RUN_WAIT = 300.0

FILES = {
    # path under DESTDIR -> mode
    "usr/sbin/relayd": 0o755,
    "usr/sbin/relayctl": 0o755,
    "usr/bin/relay": 0o755,
    "usr/share/man/man1/relay.1": 0o644,
    "usr/share/man/man5/relayd.conf.5": 0o644,
    "usr/share/man/man7/relay.7": 0o644,
    "usr/share/man/man8/relayd.8": 0o644,
    "usr/share/man/man8/relayctl.8": 0o644,
    "usr/share/examples/relayd/relayd.conf": 0o644,
    "etc/relayd.conf": 0o644,
    "usr/lib/systemd/system/relayd.service": 0o644,
}


def make(target, destdir):
    # -o all: install what the tests ran, never rebuild it here (with
    # other flags than the build under test was made with).
    argv = ["make", "-s", "-o", "all", "-C", TOP, target,
            "DESTDIR=%s" % destdir,
            "PREFIX=%s" % PREFIX, "BUILD=%s" % conftest.BUILD]
    # Not the settings of a make that runs these tests (make asan).
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=RUN_WAIT)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, "%s failed:\n%s" % (" ".join(argv), out)
    return out


def tree(top):
    out = set()
    for root, _, files in os.walk(top):
        for fn in files:
            out.add(os.path.relpath(os.path.join(root, fn), top))
    return out


@pytest.fixture
def installed(tmp_path):
    if not os.access(conftest.RELAYD, os.X_OK):
        pytest.skip("%s is not built yet" % conftest.RELAYD)
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dest = str(tmp_path / "dest")
    make("install", dest)
    return dest


def test_install_tree(installed):
    assert tree(installed) == set(FILES), sorted(tree(installed))
    for rel, mode in FILES.items():
        st = os.stat(os.path.join(installed, rel))
        assert stat.S_IMODE(st.st_mode) == mode, (rel, oct(st.st_mode))
    with open(os.path.join(TOP, "relayd", "relayd.conf")) as f:
        example = f.read()
    for rel in ("usr/share/examples/relayd/relayd.conf", "etc/relayd.conf"):
        with open(os.path.join(installed, rel)) as f:
            assert f.read() == example
    with open(os.path.join(installed,
                           "usr/lib/systemd/system/relayd.service")) as f:
        unit = f.read()
    assert "@SBINDIR@" not in unit
    assert re.search(r"^ExecStart=/usr/sbin/relayd$", unit, re.M), unit
    for directive in ("Type=forking", "PIDFile=/run/relayd.pid",
                      "NoNewPrivileges=yes", "ProtectSystem=strict",
                      "ProtectHome=yes", "PrivateTmp=yes",
                      "ReadWritePaths=/var/lib/relayd /run",
                      "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"):
        assert re.search("^%s$" % re.escape(directive), unit, re.M), \
            directive
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M)
    assert caps, unit
    for cap in ("CAP_SYS_CHROOT", "CAP_SETUID", "CAP_SETGID"):
        assert cap in caps.group(1).split()


def test_installed_relayd_runs(installed, tmp_path):
    p = subprocess.run([os.path.join(installed, "usr/sbin/relayd"), "-n",
                        "-c", "/dev/null", "-s", str(tmp_path / "state")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert b"configuration OK" in p.stderr


def test_example_conf_is_valid(installed, daemon_factory):
    """The example as shipped, and with every setting uncommented."""
    d = daemon_factory(start=False)
    src = os.path.join(installed, "usr/share/examples/relayd/relayd.conf")
    with open(src) as f:
        text = f.read()
    on = re.sub(r"^#([a-z_]+ \S+)$", r"\1", text, flags=re.M)
    assert on.count("\n") == text.count("\n")
    assert len(re.findall(r"^[a-z_]+ ", on, re.M)) >= 20, on
    for i, body in enumerate((text, on)):
        path = os.path.join(d.dir, "example%d.conf" % i)
        with open(path, "w") as f:
            f.write(body)
        # The fixture's files over the default paths, which may not exist
        # on this machine.
        p = subprocess.run([conftest.RELAYD, "-n", "-c", path] +
                           d.argv()[1:], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert p.returncode == 0, (i, p.stderr.decode())


def test_systemd_analyze_verify(installed, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (no systemd here): "
                    "the unit is not verified")
    # verify wants the programs the unit runs to exist: point it at the
    # copies under DESTDIR.
    with open(os.path.join(installed,
                           "usr/lib/systemd/system/relayd.service")) as f:
        unit = f.read().replace("/usr/sbin/relayd",
                                os.path.join(installed, "usr/sbin/relayd"))
    path = str(tmp_path / "relayd.service")
    with open(path, "w") as f:
        f.write(unit)
    p = subprocess.run([tool, "verify", "--man=no", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0 and "relayd.service" not in out, out


def test_reinstall_keeps_edited_conf_and_uninstall(installed):
    conf = os.path.join(installed, "etc", "relayd.conf")
    with open(conf, "a") as f:
        f.write("ttl 60\n")
    make("install", installed)
    with open(conf) as f:
        assert f.read().endswith("ttl 60\n"), "install overwrote relayd.conf"
    make("uninstall", installed)
    assert tree(installed) == {"etc/relayd.conf"}, sorted(tree(installed))
    # An unedited one goes with the rest.
    os.unlink(conf)
    make("install", installed)
    make("uninstall", installed)
    assert tree(installed) == set(), sorted(tree(installed))
