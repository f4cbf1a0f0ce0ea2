"""Test harness: start the real rendezvousd on a loopback port, talk JSON-RPC.

Every test starts its own daemon (port 0, the bound port read from its log),
stops it by pid, and checks that it exited 0 with no sanitizer report.
"""
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import rvschema

DAEMON = os.environ.get("RENDEZVOUSD", "build/daemon/rendezvousd")
CTL = os.environ.get("RENDEZVOUSCTL", "build/cli/rendezvousctl")
SOURCE_ROOT = os.environ.get(
    "RV_SOURCE_ROOT",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TIMEOUT = 10.0  # generous: the machine is shared and noisy
# Every line a Client sends and receives is checked against proto/schema/ (rvschema.py).
SCHEMA = rvschema.Checker(os.path.join(SOURCE_ROOT, "proto", "schema", "rendezvous.schema.json"))

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: AddressSanitizer")


class Daemon:
    """One rendezvousd process on 127.0.0.1 with an ephemeral port."""

    def __init__(self, *args, preexec_fn=None, state_dir=None, env=None, config=None,
                 listen=("--listen", "127.0.0.1:0")):
        """Without state_dir (or --store/--state-dir in args) the store goes in a
        fresh directory that stop() removes. config: the configuration file's
        text (none is read otherwise, not even /etc/rendezvous's). listen: the
        listen flags (() for the daemon's default addresses)."""
        self.own_state = None
        self.config = None
        self.stopped = None
        if config is not None:
            fd, self.config = tempfile.mkstemp(prefix="rendezvousd-", suffix=".conf")
            with os.fdopen(fd, "w") as f:
                f.write(config)
            args = ("--config", self.config, *args)
        elif "--config" not in args:
            args = ("--config", "/dev/null", *args)
        if state_dir is None and not any(a.split("=")[0] in ("--store", "--state-dir")
                                         for a in args):
            state_dir = self.own_state = tempfile.mkdtemp(prefix="rendezvous-state-")
        self.state_dir = state_dir
        self.log = tempfile.NamedTemporaryFile(prefix="rendezvousd-", suffix=".log", delete=False)
        env = {**os.environ, **(env or {})}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        state = ["--state-dir", state_dir] if state_dir is not None else []
        self.proc = subprocess.Popen(
            [DAEMON, *listen, *state, *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn)
        self.port = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            # "ready" comes once every listener is bound (unix ones after TCP's).
            log = self.read_log()
            m = re.search(r"listening on (?:127\.0\.0\.1|\[::1\]):(\d+)\n", log)
            if m and re.search(r"rendezvousd \S+ ready", log):
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(TLS\)", self.read_log())
        self.tls_port = int(m.group(1)) if m else None
        m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(WebSocket\)", self.read_log())
        self.ws_port = int(m.group(1)) if m else None
        m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(WebSocket, TLS\)", self.read_log())
        self.wss_port = int(m.group(1)) if m else None
        if self.port is None:
            self.proc.kill()
            self.proc.wait()
            log = self.read_log()
            self._cleanup()
            raise RuntimeError("rendezvousd did not start:\n" + log)

    def _cleanup(self):
        self.log.close()
        os.unlink(self.log.name)
        if self.config is not None:
            os.unlink(self.config)
        if self.own_state is not None:
            shutil.rmtree(self.own_state, ignore_errors=True)

    def wait_log(self, pattern, timeout=TIMEOUT):
        """The first match of pattern in the log, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.read_log())
            if m or time.monotonic() > deadline or self.proc.poll() is not None:
                if not m:
                    raise AssertionError("no %r in the log:\n%s" % (pattern, self.read_log()))
                return m
            time.sleep(0.02)

    def read_log(self):
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def rss(self):
        """The daemon's resident memory now, in bytes (/proc)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for pid %d" % self.proc.pid)

    def stop(self, sig=signal.SIGTERM):
        """Stop the daemon; returns (exit status, log). Again: the same answer."""
        if self.stopped is not None:
            return self.stopped
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = self.read_log()
        self._cleanup()
        self.stopped = (self.proc.returncode, log)
        return self.stopped

    def client(self, user=None, device=None, **kw):
        c = Client(self.port, **kw)
        if user is not None:
            c.hello(user, device)
        return c

    def ctl(self, *args, port=None, env=None):
        """Run rendezvousctl against this daemon (port: another of its ports)."""
        return subprocess.run([CTL, "--connect", "127.0.0.1:%d" % (port or self.port), *args],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, **(env or {})})


class Watch:
    """rendezvousctl --connect ADDRESSES --user USER --json watch ARGS, running; its
    output lines and error lines collected as they come (lines, errs)."""

    def __init__(self, addresses, user, *args):
        self.proc = subprocess.Popen([CTL, "--connect", addresses, "--user", user, "--json",
                                      "watch", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self.errs = [], []
        self.readers = [threading.Thread(target=self._read, args=(f, into), daemon=True)
                        for f, into in ((self.proc.stdout, self.lines),
                                        (self.proc.stderr, self.errs))]
        for t in self.readers:
            t.start()

    @staticmethod
    def _read(f, into):
        for line in f:
            into.append(line)

    def stop(self):
        """SIGINT, as a user's ^C; its exit status once everything it wrote is read."""
        self.proc.send_signal(signal.SIGINT)
        status = self.proc.wait(timeout=10)
        for t in self.readers:
            t.join(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return status


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.error = error


class Client:
    """A JSON-RPC connection; notifications are queued while waiting for replies."""

    def __init__(self, port, timeout=TIMEOUT, tls=None, server_hostname="localhost",
                 unix=None):
        """tls: an ssl.SSLContext to speak TLS with (the handshake happens here).
        unix: the path of a unix socket to connect to instead of the port."""
        if unix is not None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""
        self.next_id = 1
        self.notes = collections.deque()
        self.user = None
        self.pending = {}  # requests sent, by id: rvschema checks their replies

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)
        SCHEMA.sent(data, self.pending)

    def read_line(self, timeout=TIMEOUT):
        """The next line from the daemon (bytes, without the newline)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from daemon")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        SCHEMA.received(line, self.pending)
        return line

    def read_msg(self, timeout=TIMEOUT):
        return json.loads(self.read_line(timeout))

    def request(self, method, params=None, id=None):
        """Send a request; returns its id."""
        if id is None:
            id = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            msg["params"] = params
        self.send_raw((json.dumps(msg) + "\n").encode())
        return id

    def response(self, id, timeout=TIMEOUT):
        """Wait for the response to id, queueing notifications met on the way."""
        while True:
            msg = self.read_msg(timeout)
            if "method" in msg and "id" not in msg:
                self.notes.append(msg)
                continue
            if msg.get("id") != id:
                raise AssertionError(f"unexpected message {msg} while waiting for id {id}")
            return msg

    def call(self, method, params=None):
        """Call and return the result, or raise RpcError."""
        msg = self.response(self.request(method, params))
        if "error" in msg:
            raise RpcError(msg["error"])
        return msg["result"]

    def error(self, method, params=None):
        """Call expecting an error; returns the error object."""
        msg = self.response(self.request(method, params))
        if "error" not in msg:
            raise AssertionError(f"{method} {params}: expected an error, got {msg}")
        return msg["error"]

    def hello(self, user, device=None):
        """hello as user; device: the device it is (absent: the daemon assigns one)."""
        self.user = user
        result = self.call("hello", {"user": user, **({"device": device} if device else {})})
        self.device = result["device"]
        return result

    def note(self, timeout=TIMEOUT, method=None):
        """The next notification (optionally the next of one method; others stay queued)."""
        for i, msg in enumerate(self.notes):
            if method is None or msg["method"] == method:
                del self.notes[i]
                return msg
        while True:
            msg = self.read_msg(timeout)
            if "method" not in msg:
                raise AssertionError(f"unexpected message {msg} while waiting for a notification")
            if method is None or msg["method"] == method:
                return msg
            self.notes.append(msg)

    def event(self, timeout=TIMEOUT):
        return self.note(timeout, "session.state_changed")["params"]

    def no_message(self, wait=0.3):
        """Assert nothing arrives within wait seconds."""
        if self.notes:
            raise AssertionError(f"unexpected queued notification {self.notes[0]}")
        try:
            line = self.read_line(wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {line!r}")


class DaemonTest(unittest.TestCase):
    """A test case with a fresh daemon per test; clients are closed for it."""

    daemon_args = ()

    def setUp(self):
        self.daemon = Daemon(*self.daemon_args)
        self.clients = []
        # A cleanup, not tearDown: it runs even when a subclass's setUp fails after this.
        self.addCleanup(self.stop_daemon)

    def stop_daemon(self):
        for c in self.clients:
            c.close()
        status, log = self.daemon.stop()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, log[-4000:])
        self.assertEqual(status, 0, "rendezvousd exited %s:\n%s" % (status, log[-4000:]))

    def client(self, user=None, device=None, **kw):
        c = self.daemon.client(user, device, **kw)
        self.clients.append(c)
        return c

    def ctl(self, *args, **kw):
        return self.daemon.ctl(*args, **kw)

    def restart(self, *args):
        """Stop the current daemon (checking it) and start another."""
        status, log = self.daemon.stop()
        self.assertEqual(status, 0, log[-4000:])
        self.daemon = Daemon(*args)

    def assertRpcError(self, code, fn, *args):
        with self.assertRaises(RpcError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.code, code, cm.exception.error)
        return cm.exception.error


def make_certs(directory):
    """Test certificates in directory: ca.pem (a CA, with ca.key), other.pem (another CA),
    and server.pem with server.key, signed by ca, for localhost and 127.0.0.1 (P-256)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    for ca in ("ca", "other"):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2",
                "-subj", "/CN=test " + ca)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(directory, "san"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san")


class Redis:
    """One redis-server on 127.0.0.1 with a port of its own, working in a fresh
    directory; stop() stops it by pid and removes the directory."""

    def __init__(self, *args, port=None, workdir=None):
        self.port = port or free_port()
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="rendezvous-redis-")
        self.log = os.path.join(self.dir, "redis.log")
        self.args = args
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", self.dir, "--save", "", "--logfile", self.log, *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def command(self, *args):
        """One command by RESP over a fresh connection; the raw reply text."""
        return redis_command(self.port, *args)

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def redis_command(port, *args):
    """One command to the Redis (or Sentinel) on a loopback port, by RESP over a
    fresh connection; the raw reply text (what one read returns)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)
    data = s.recv(65536)
    s.close()
    return data.decode(errors="replace")


def free_port():
    """A loopback TCP port nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, what, timeout=TIMEOUT):
    """Wait until cond() is true, or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def lifecycle_to(c_inviter, c_invitee, state, **create):
    """Create a session and drive it to state; returns the session id."""
    sid = c_inviter.call("session.create", {"invitee": c_invitee.user, **create})["session"]
    if state == "RSS_READY":
        return sid
    c_inviter.call("session.invite", {"session": sid})
    if state == "RSS_INVITATION":
        return sid
    c_invitee.call("session.accept", {"session": sid})
    if state == "RSS_ACCEPTED":
        return sid
    c_inviter.call("session.connect", {"session": sid})
    c_invitee.call("session.connect", {"session": sid})
    assert state == "RSS_CONNECTED"
    return sid


def main():
    unittest.main(verbosity=2)
