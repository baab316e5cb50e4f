"""
test_20_client_tty.py: relay(1) on a terminal, black-box, in tmux panes
(send-keys types, capture-pane shows the screen as a person sees it).
Two people chat; a message arrives while a line is half typed and the
line and its cursor survive; an escape sequence from another user is shown
made visible; history recalls earlier lines; Control-D leaves cleanly.

Each case runs its own tmux server on a private socket.  Every wait polls
the screen with a deadline.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from relayproto import WAIT

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("RELAY_BUILD") or \
    os.path.normpath(os.path.join(HERE, "..", "..", "build"))
RELAY = os.path.join(BUILD, "relay")
TMUX = shutil.which("tmux")

pytestmark = [
    pytest.mark.skipif(not os.access(RELAY, os.X_OK),
                       reason="%s is not built yet" % RELAY),
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
]


class Tmux:
    """A private tmux server; one window per relay."""

    def __init__(self, path):
        self.sock = str(path / "tmux.sock")
        self.conf = path / "tmux.conf"
        self.conf.write_text("set -g status off\nset -g history-limit 2000\n")
        self.windows = 0

    def tmux(self, *args, check=True):
        return subprocess.run([TMUX, "-S", self.sock, "-f", str(self.conf)]
                              + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=WAIT,
                              check=check)

    def start(self, argv, env):
        """Run argv in a new 100x30 window; returns its target."""
        self.windows += 1
        name = "w%d" % self.windows
        cmd = "env -i %s %s; echo \"EXITED $?\"; sleep 600" % (
            " ".join(shlex.quote("%s=%s" % kv) for kv in env.items()),
            " ".join(shlex.quote(a) for a in argv))
        if self.windows == 1:
            self.tmux("new-session", "-d", "-s", "t", "-n", name, "-x",
                      "100", "-y", "30", cmd)
        else:
            self.tmux("new-window", "-d", "-t", "t", "-n", name, cmd)
        return "t:" + name

    def keys(self, target, *keys, literal=False):
        args = ["send-keys", "-t", target]
        if literal:
            args.append("-l")
        self.tmux(*(args + list(keys)))

    def screen(self, target):
        return self.tmux("capture-pane", "-p", "-J", "-t",
                         target).stdout.decode("utf-8", "replace")

    def wait(self, target, pred, what):
        until = time.monotonic() + WAIT
        while True:
            s = self.screen(target)
            if pred(s):
                return s
            if time.monotonic() > until:
                raise AssertionError("screen never showed %s:\n%s" %
                                     (what, s))
            time.sleep(0.05)   # polling interval, not a wait for an event

    def wait_text(self, target, text):
        return self.wait(target, lambda s: text in s, repr(text))

    def kill(self):
        """Ends the server and everything its panes ran: a client left
        behind must not outlive the test."""
        r = self.tmux("list-panes", "-a", "-F", "#{pane_pid}", check=False)
        pids = [int(x) for x in r.stdout.split() if x.isdigit()]
        self.tmux("kill-server", check=False)
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def lines(screen):
    return [ln.rstrip() for ln in screen.splitlines() if ln.strip()]


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.kill()


@pytest.fixture
def term(daemon, tmux, tmp_path):
    """term(user) starts an interactive relay for user; its target."""
    pws = {}

    def start(user):
        p = tmp_path / ("pw." + user)
        p.write_text(daemon.users[user] + "\n", encoding="utf-8")
        os.chmod(p, 0o600)
        pws[user] = p
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": str(tmp_path), "TERM": "screen",
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
        argv = [RELAY, "-K", daemon.keyfile, "-S", daemon.secretfile,
                "-P", str(p), "-u", user, "127.0.0.1", str(daemon.port)]
        t = tmux.start(argv, env)
        tmux.wait_text(t, "/help for help")
        tmux.wait(t, lambda s: lines(s)[-1] == ">", "the prompt")
        return t

    return start


def last_line(screen):
    return lines(screen)[-1]


def test_two_terminals_chat(daemon, tmux, term):
    a = term("alice")
    b = term("bob")
    tmux.keys(a, "hello bob", literal=True)
    tmux.keys(a, "Enter")
    tmux.wait(b, lambda s: re.search(r"\[[0-9:]+\] <alice> hello bob", s),
              "alice's line on bob's screen")
    tmux.keys(b, "hi alice, ça va?", literal=True)
    tmux.keys(b, "Enter")
    tmux.wait(a, lambda s: "<bob> hi alice, ça va?" in s,
              "bob's line on alice's screen")
    tmux.keys(a, "/msg bob private word", literal=True)
    tmux.keys(a, "Enter")
    tmux.wait(b, lambda s: re.search(r"\*alice\* private word", s),
              "the direct message")
    tmux.wait(a, lambda s: re.search(r"bob read your message \(\S+\) at "
                                     r"[0-9]{2}:[0-9]{2}", s),
              "the read receipt")
    tmux.keys(a, "/who", literal=True)
    tmux.keys(a, "Enter")
    tmux.wait_text(a, "logged in: alice bob")
    tmux.keys(a, "/quit", literal=True)
    tmux.keys(a, "Enter")
    tmux.wait_text(a, "EXITED 0")


def test_half_typed_line_survives(daemon, tmux, term):
    a = term("alice")
    carol = daemon.login("carol")
    tmux.keys(a, "half typ", literal=True)
    tmux.keys(a, "Left", "Left")
    tmux.wait(a, lambda s: last_line(s) == "> half typ", "the typed line")
    for i in range(3):
        carol.say("interruption %d" % i)
    s = tmux.wait(a, lambda s: "<carol> interruption 2" in s,
                  "the messages")
    ls = lines(s)
    # The messages are above the input, which is intact and still last.
    assert ls[-1] == "> half typ", ls
    assert [x.split("> ", 1)[1] for x in ls[-4:-1]] == \
        ["interruption 0", "interruption 1", "interruption 2"], ls
    # The cursor stayed two characters from the end.
    tmux.keys(a, "X", literal=True)
    tmux.wait(a, lambda s: last_line(s) == "> half tXyp", "the insertion")
    tmux.keys(a, "Enter")
    carol.push(r"SAY alice [0-9]+ half tXyp")


def test_long_half_typed_line_survives(daemon, tmux, term):
    """A line wrapped over several rows is redrawn whole."""
    a = term("alice")
    carol = daemon.login("carol")
    text = "".join("word%03d " % i for i in range(30)).strip()   # 239 chars
    tmux.keys(a, text, literal=True)
    tmux.wait(a, lambda s: "word029" in s, "the long line")
    carol.say("between")
    s = tmux.wait(a, lambda s: "<carol> between" in s, "the message")
    # capture-pane -J joins the wrapped rows back into one line.
    assert last_line(s) == "> " + text, lines(s)
    assert sum(ln.count("word000") for ln in lines(s)) == 1, lines(s)
    tmux.keys(a, "Enter")
    carol.push(r"SAY alice [0-9]+ " + re.escape(text))


def test_escape_sequences_made_visible(daemon, tmux, term):
    a = term("alice")
    carol = daemon.login("carol")
    carol.say("\x1b[2J\x1b[31mred\x1b[0m bell\x07 del\x7f c1\u009b ok \u00e9")
    s = tmux.wait(a, lambda s: "<carol>" in s, "the message")
    line = [ln for ln in lines(s) if "<carol>" in ln][0]
    assert line.endswith("<carol> ^[[2J^[[31mred^[[0m bell^G del^? "
                         "c1\\xc2\\x9b ok \u00e9"), line
    # The screen was not cleared and the prompt is still there.
    assert "/help for help" in s and last_line(s) == ">"
    carol.compose_ok("alice", "title\x1b]0;pwned\x07 done")
    tmux.wait_text(a, "*carol* title^[]0;pwned^G done")


def test_history(daemon, tmux, term):
    a = term("alice")
    carol = daemon.login("carol")
    for text in ("first line", "second line"):
        tmux.keys(a, text, literal=True)
        tmux.keys(a, "Enter")
        carol.push(r"SAY alice [0-9]+ " + text)
    tmux.keys(a, "Up", "Up")
    tmux.wait(a, lambda s: last_line(s) == "> first line", "history")
    tmux.keys(a, "Down")
    tmux.wait(a, lambda s: last_line(s) == "> second line", "history")
    tmux.keys(a, " again", literal=True)
    tmux.keys(a, "Enter")
    carol.push(r"SAY alice [0-9]+ second line again")


def test_control_d_quits(daemon, tmux, term):
    a = term("alice")
    tmux.keys(a, "C-d")
    tmux.wait_text(a, "EXITED 0")


def test_bye_shown(daemon, tmux, term):
    a = term("alice")
    daemon.stop()
    s = tmux.wait_text(a, "EXITED 5")
    assert "the server says goodbye: shutting down" in s
