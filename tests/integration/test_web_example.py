#!/usr/bin/env python3
"""examples/web/ in headless Chromium (Debian's chromium) against the real daemon:
two tabs, alice and bob, served over HTTP on loopback, pair through --listen-ws as a
user would, by clicking the page's buttons; the test reads what each page shows. The
browser is driven through the Chrome DevTools Protocol (a WebSocket, wsclient.py). On
failure each page's screenshot is written beside the test's log and named in it."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from rvtest import SOURCE_ROOT, Daemon, free_port, main
from wsclient import WsClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
TIMEOUT = 20


class Page:
    """One tab, driven through its DevTools WebSocket."""

    def __init__(self, debug_port, url):
        req = urllib.request.Request("http://127.0.0.1:%d/json/new?about:blank" % debug_port,
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            target = json.load(r)
        path = re.sub(r"^ws://[^/]+", "", target["webSocketDebuggerUrl"])
        self.ws = WsClient(debug_port, path=path, timeout=TIMEOUT)
        self.next = 1
        self.cdp("Page.navigate", url=url)  # (a URL in /json/new's query loses its "&...")

    def cdp(self, method, **params):
        id = self.next
        self.next += 1
        self.ws.send({"id": id, "method": method, "params": params})
        while True:
            msg = self.ws.recv()
            if msg.get("id") == id:
                if "error" in msg:
                    raise AssertionError("%s: %s" % (method, msg["error"]))
                return msg["result"]

    def js(self, expression):
        r = self.cdp("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError("%s: %s" % (expression, r["exceptionDetails"]))
        return r["result"].get("value")

    def text(self, id):
        """The element's text; None while the page is still loading."""
        return self.js("(document.getElementById(%s) || {}).textContent" % json.dumps(id))

    def click(self, id):
        self.wait(lambda: self.js("!(document.getElementById(%s) || {disabled: true}).disabled"
                                  % json.dumps(id)), "%s enabled" % id)
        self.js("document.getElementById(%s).click()" % json.dumps(id))

    def wait(self, cond, what):
        deadline = time.monotonic() + TIMEOUT
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; the page's log:\n%s"
                                     % (what, self.text("log")))
            time.sleep(0.05)

    def wait_state(self, state):
        self.wait(lambda: self.text("state") == state, "state " + state)

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cdp("Page.captureScreenshot")["data"]))


class WebExample(unittest.TestCase):
    def setUp(self):
        http_port = free_port()
        origin = "http://127.0.0.1:%d" % http_port
        self.daemon = Daemon("--listen-ws", "127.0.0.1:0", "--ws-origin", origin)
        self.addCleanup(self.daemon.stop)
        self.http = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
             os.path.join(SOURCE_ROOT, "examples", "web"), str(http_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop, self.http)
        profile = tempfile.TemporaryDirectory(prefix="rv-chromium-")
        self.addCleanup(profile.cleanup)
        args = [CHROMIUM, "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
                "--user-data-dir=" + profile.name, "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses root
        self.browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        self.addCleanup(self.stop, self.browser)
        line = ""
        deadline = time.monotonic() + TIMEOUT
        while "DevTools listening on" not in line:
            line = self.browser.stderr.readline()
            if not line and self.browser.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("chromium did not start")
        self.debug_port = int(re.search(r"127\.0\.0\.1:(\d+)/", line).group(1))
        # The page is served once http.server answers.
        self.base = origin + "/"
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                urllib.request.urlopen(self.base, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @staticmethod
    def stop(proc):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def test_two_tabs_pair(self):
        ws = "ws://127.0.0.1:%d" % self.daemon.ws_port
        pages = {}
        try:
            for user in ("alice", "bob"):
                pages[user] = Page(self.debug_port, "%s?user=%s&ws=%s" % (self.base, user, ws))
            alice, bob = pages["alice"], pages["bob"]
            for p in (alice, bob):
                p.wait(lambda p=p: p.text("conn") == "ready", "hello and subscribe")
            alice.click("invite")
            bob.wait_state("RSS_INVITATION")
            alice.wait_state("RSS_INVITATION")
            bob.click("accept")
            alice.wait_state("RSS_ACCEPTED")
            alice.click("connect")
            bob.click("connect")
            for p in (alice, bob):
                p.wait_state("RSS_CONNECTED")
            alice.js("document.getElementById('text').value = 'hi bob'")
            alice.click("send")
            bob.wait(lambda: 'data from alice: {"text":"hi bob"}' in bob.text("log"),
                     "alice's context data")
            bob.js("document.getElementById('text').value = 'hi alice'")
            bob.click("send")
            alice.wait(lambda: 'data from bob: {"text":"hi alice"}' in alice.text("log"),
                       "bob's context data")
            alice.click("terminate")
            for p in (alice, bob):
                p.wait_state("RSS_TERMINATED")
            # Each tab saw every change of the session as it arrived, in order.
            for p, first in ((alice, "RSS_UNKNOWN -> RSS_READY"),
                             (bob, "RSS_READY -> RSS_INVITATION")):
                log = p.text("log")
                changes = re.findall(r"event \d+: (\w+ -> \w+)", log)
                self.assertEqual(changes[0], first, log)
                self.assertEqual(changes[-1], "RSS_CONNECTED -> RSS_TERMINATED", log)
                ids = [int(i) for i in re.findall(r"event (\d+):", log)]
                self.assertEqual(ids, sorted(ids), log)
                self.assertNotIn("err", p.js("document.getElementById('log').innerHTML"))
        except BaseException:
            out = os.getcwd()
            for user, p in pages.items():
                path = os.path.join(out, "web-example-%s.png" % user)
                try:
                    p.screenshot(path)
                    print("screenshot of %s's page: %s" % (user, path), file=sys.stderr)
                except Exception as e:  # the failure above matters more
                    print("no screenshot of %s's page: %s" % (user, e), file=sys.stderr)
            raise
        finally:
            for p in pages.values():
                p.ws.close()


if __name__ == "__main__":
    main()
