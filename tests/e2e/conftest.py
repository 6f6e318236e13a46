"""Real components for the end-to-end tests: an SMTP server that keeps what it receives, and a
Celery worker in its own process on the configured broker and the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

from nps_project.celery import app as celery_app

# A real worker process: two pool processes, none of the cluster chatter a test does not need.
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.messages = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def snapshot(self) -> list:
        with self._lock:
            return list(self.messages)

    def wait_for(self, count: int, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.snapshot()
            if len(messages) >= count:
                return messages
            time.sleep(0.2)
        raise AssertionError(f"expected {count} emails, the SMTP server got {len(self.snapshot())}")


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


def database_url() -> str:
    """The URL of the database this test run uses (pytest-django's test database)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or "postgres"
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{params['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db, smtp_sink, live_server, tmp_path):
    """A real `celery worker` process sharing the test database and broker, emailing through
    the SMTP sink, with links pointing at the live test server."""
    _sink, smtp_port = smtp_sink
    celery_app.control.purge()  # nothing left over from earlier tests reaches this worker
    log_path = Path(tmp_path) / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "NPS_SITE_URL": live_server.url,
        "NPS_VAR_DIR": str(settings.VAR_DIR),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            WORKER_COMMAND,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the Celery worker did not start:\n" + log_path.read_text())
        time.sleep(0.2)
    process.log_path = log_path
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, "the worker logged an error:\n" + log_text
