"""A real HTTP receiver on 127.0.0.1, in a thread: it records every request and answers with
the next scripted reply (a status code, or ``("sleep", seconds)`` to force a client timeout)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Receiver:
    url: str
    replies: deque = field(default_factory=deque)
    requests: list = field(default_factory=list)

    def reply(self, *replies) -> None:
        self.replies.extend(replies)


@pytest.fixture
def receiver():
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append({"headers": dict(self.headers), "body": body, "path": self.path})
            reply = state.replies.popleft() if state.replies else 200
            if isinstance(reply, tuple) and reply[0] == "sleep":
                time.sleep(reply[1])
                reply = 200
            try:
                self.send_response(reply)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if reply < 300 else b"receiver says no")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/nps"
    yield state
    server.shutdown()
    server.server_close()
