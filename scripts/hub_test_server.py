#!/usr/bin/env python3
"""A stand-in for the Hugging Face Hub on loopback, for peft-plan's tests (no test touches
the internet). Usage: hub_test_server.py CONFIG_JSON SEEN_FILE; prints the port it listens on.

It answers GET /ORG/NAME/resolve/REVISION/config.json as the Hub does, the ORG choosing the
answer:
  ok        200, the config, X-Repo-Commit
  gated     200 with "Bearer good", 403 with "Bearer nolicence", else 401
  missing   404, X-Error-Code RepoNotFound
  norev     404, X-Error-Code RevisionNotFound
  rate      429
  slow      200 after 5 seconds
  cut       Content-Length 5000, 100 bytes, then the connection closes
  huge      17 MiB with no Content-Length
  bigheader Content-Length of 64 MiB
  html      200, an HTML page
  away      302 to the same path on another host name (localhost instead of 127.0.0.1),
            whose answer records whether an Authorization header came along
  renamed   307 to /gated/... on the same host
SEEN_FILE gets a line "authorization" or "none" per request that followed the redirect.
"""
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONFIG = b""
SEEN_FILE = None
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve" or parts[-1] != "config.json":
            return self.answer(404, b"{}", {"X-Error-Code": "EntryNotFound"})
        org = parts[0]
        auth = self.headers.get("Authorization")
        port = self.server.server_address[1]
        if org in ("ok", "Qwen"):   # Qwen: the README's headline id, Qwen/Qwen3.5-9B
            return self.answer(200, CONFIG, {"X-Repo-Commit": COMMIT})
        if org == "gated":
            if auth == "Bearer good":
                return self.answer(200, CONFIG, {"X-Repo-Commit": COMMIT})
            if auth == "Bearer nolicence":
                return self.answer(403, b'{"error": "gated"}')
            return self.answer(401, b'{"error": "unauthorized"}')
        if org == "missing":
            return self.answer(404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"})
        if org == "norev":
            return self.answer(404, b'{"error": "no revision"}', {"X-Error-Code": "RevisionNotFound"})
        if org == "rate":
            return self.answer(429, b"{}")
        if org == "slow":
            time.sleep(5)
            return self.answer(200, CONFIG)
        if org == "cut":
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(CONFIG[:100])
            self.wfile.flush()
            self.close_connection = True
            return
        if org == "huge":
            self.send_response(200)
            self.end_headers()
            chunk = b" " * (1 << 20)
            try:
                for _ in range(17):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        if org == "bigheader":
            self.send_response(200)
            self.send_header("Content-Length", str(64 << 20))
            self.end_headers()
            self.close_connection = True
            return
        if org == "html":
            return self.answer(200, b"<!doctype html><html><body>Hugging Face</body></html>", {"Content-Type": "text/html"})
        if org == "away":
            target = f"http://localhost:{port}/capture/{'/'.join(parts[1:])}"
            return self.answer(302, b"", {"Location": target})
        if org == "capture":
            with open(SEEN_FILE, "a") as f:
                f.write("authorization\n" if auth is not None else "none\n")
            return self.answer(200, CONFIG, {"X-Repo-Commit": COMMIT})
        if org == "renamed":
            return self.answer(307, b"", {"Location": "/gated/" + "/".join(parts[1:])})
        return self.answer(404, b"{}", {"X-Error-Code": "RepoNotFound"})


def main():
    global CONFIG, SEEN_FILE
    # a test runner's thread may hand its blocked signals down: take SIGTERM and SIGINT back
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    with open(sys.argv[1], "rb") as f:
        CONFIG = f.read()
    SEEN_FILE = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
