"""Real components for ``bench/faults.py``, each one this process starts, stops and restarts:

- ``PrivatePostgres``: its own cluster (``initdb`` into a temporary folder, as the ``postgres``
  OS user when we run as root), on its own port, trust authentication on loopback only;
- ``PrivateRedis``: its own ``redis-server`` on its own port, without persistence, so a
  restart loses everything it held (the worst case for the task queue);
- ``SmtpSink``: an aiosmtpd server that keeps every message it accepts, stoppable and
  restartable on the same port, with a small delay at RCPT like a real server's latency;
- ``WebhookReceiver``: a local HTTP server that records every delivery it receives (by event
  id, before it answers) and answers each path after a configurable delay;
- ``Worker`` and ``Gunicorn``: the product's own processes, in their own process groups, on
  the private PostgreSQL and Redis.

Nothing here touches the machine's shared PostgreSQL or Redis.
"""

from __future__ import annotations

import asyncio
import collections
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The same worker command line as the end-to-end tests (tests/e2e/conftest.py).
WORKER_COMMAND = [
    sys.executable,
    "-m",
    "celery",
    "-A",
    "nps_project",
    "worker",
    "--loglevel",
    "INFO",
    "--concurrency",
    "2",
    "--without-heartbeat",
    "--without-gossip",
    "--without-mingle",
]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a last run
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        sys.exit("PostgreSQL's initdb was not found (PATH or /usr/lib/postgresql/*/bin).")
    return Path(candidates[-1]).parent


class PrivatePostgres:
    """A PostgreSQL cluster of our own: ``start``, ``stop(mode)``, ``restart``."""

    def __init__(self, root: Path, port: int):
        self.root = root / "pg"
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = port
        self.bin = postgres_bin_dir()
        self.running = False

    def _as_postgres(self, *command: str) -> list[str]:
        if os.geteuid() == 0:  # initdb refuses root: run as the postgres OS user
            return ["runuser", "-u", "postgres", "--", *command]
        return list(command)

    def _run(self, *command: str) -> None:
        subprocess.run(
            self._as_postgres(*command),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def init(self) -> None:
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-instructions", "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", "60", "-o", options, "start",
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash as far as clients and recovery go (no checkpoint: the
        restart replays the WAL); ``fast`` is an orderly restart."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def shutdown(self) -> None:
        if self.running:
            try:
                self.stop("fast")
            except subprocess.CalledProcessError:
                pass


# --- Redis ----------------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of our own, without persistence: ``crash`` (SIGKILL) and ``start``."""

    def __init__(self, root: Path, port: int):
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "server.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_until(self.ping, timeout=20, what="redis-server to answer PING")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def crash(self) -> None:
        """SIGKILL: whatever it held (queued and unacknowledged tasks) is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=20)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def shutdown(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.crash()


# --- SMTP -----------------------------------------------------------------------------------


class _SinkHandler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.sink.accept(envelope.rcpt_tos, envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    """Keeps (recipient, raw message) of everything accepted, across stops and restarts."""

    def __init__(self, port: int, delay: float = 0.002):
        self.port = port
        self.delay = delay
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.controller = None

    def accept(self, recipients, content: bytes) -> None:
        with self._lock:
            for recipient in recipients:
                self.messages.append((recipient.lower(), content))

    def start(self) -> None:
        import logging

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
        self.controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def recipients(self, suffix: str = "") -> collections.Counter:
        with self._lock:
            return collections.Counter(r for r, _ in self.messages if r.endswith(suffix))

    def parsed(self, suffix: str = ""):
        """(recipient, subject, text body) of each message to an address ending in ``suffix``,
        parsed as it is asked for (parsing is the slow part)."""
        with self._lock:
            chosen = [(r, c) for r, c in self.messages if r.endswith(suffix)]
        for recipient, content in chosen:
            message = message_from_bytes(content, policy=policy.default)
            body = message.get_body(preferencelist=("plain",))
            yield recipient, str(message["Subject"]), body.get_content() if body else ""


# --- Webhooks -------------------------------------------------------------------------------


class WebhookReceiver:
    """Records each POST (path, event id, event) when it arrives, then answers 200 after the
    path's delay. A receiver de-duplicates by event id; this one counts how often it had to."""

    def __init__(self, port: int, delays: dict[str, float] | None = None):
        self.port = port
        self.delays = delays or {}
        # (path, event id, event, the id in its data: response_id or followup_id)
        self.received: list[tuple[str, str, str, int | None]] = []
        self.mismatched = 0  # header event id differs from the body's id
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                event_id = self.headers.get("X-NPS-Event-Id") or ""
                data = body.get("data") or {}
                subject = data.get("followup_id") or data.get("response_id")
                with receiver._lock:
                    receiver.received.append(
                        (self.path, body.get("id", ""), body.get("event"), subject)
                    )
                    if event_id and event_id != body.get("id"):
                        receiver.mismatched += 1
                time.sleep(receiver.delays.get(self.path, 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A worker killed mid-request resets its connection: count it, print nothing.
                with receiver._lock:
                    receiver.broken += 1

        self.broken = 0  # connections that broke before the answer was written
        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def by_event_id(self, path: str, event: str) -> collections.Counter:
        """How many times each event id arrived."""
        with self._lock:
            return collections.Counter(
                eid for p, eid, ev, _s in self.received if p == path and ev == event
            )

    def events_by_subject(self, path: str, event: str) -> dict[int, set[str]]:
        """The distinct event ids received for each response or follow-up id."""
        out: dict[int, set[str]] = collections.defaultdict(set)
        with self._lock:
            for p, eid, ev, subject in self.received:
                if p == path and ev == event:
                    out[subject].add(eid)
        return out


# --- The product's processes ----------------------------------------------------------------


class _ProcessGroup:
    """A child in its own session, so signals reach its children (pool, gunicorn workers)."""

    process: subprocess.Popen

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class Worker(_ProcessGroup):
    """``celery worker`` (2 pool processes) with ``env``; waits until it is ready."""

    def __init__(self, env: dict, log_path: Path, name: str):
        self.log_path = log_path
        log_path.touch()
        before = log_path.read_bytes().count(b" ready.")
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*WORKER_COMMAND, "-n", f"{name}@%h"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: (
                    self.process.poll() is not None
                    or log_path.read_bytes().count(b" ready.") > before
                ),
                timeout=90,
                what="the Celery worker to be ready",
            )
        except TimeoutError:
            self.kill()
            raise
        if self.process.poll() is not None:
            raise RuntimeError("the worker exited:\n" + log_path.read_text()[-3000:])


class Gunicorn(_ProcessGroup):
    """The Procfile's web process: gunicorn, 2 sync workers, the redacting logger."""

    def __init__(self, env: dict, port: int, log_dir: Path):
        self.port = port
        self.error_log = log_dir / "gunicorn-error.log"
        self.access_log = log_dir / "gunicorn-access.log"
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "nps_project.wsgi",
                "--bind", f"127.0.0.1:{port}", "--workers", "2",
                "--access-logfile", str(self.access_log),
                "--error-logfile", str(self.error_log),
                "--logger-class", "nps_project.gunicorn_logging.RedactingLogger",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_until(self._answers, timeout=60, what="gunicorn to answer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("gunicorn exited:\n" + self.error_log.read_text()[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False
