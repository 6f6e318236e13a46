"""Delivery under faults, on real components: a Celery worker process on the configured broker
(Redis in the first pass of `make test`, the filesystem transport in the second), the test
database, and an SMTP server (aiosmtpd) that counts what it accepts per recipient.

- The worker is killed with SIGKILL in the middle of a wave and a new one started: every
  invitation is emailed exactly once.
- The SMTP server stops in the middle of a wave and comes back: the sends retry and every
  invitation arrives exactly once.

The test process plays beat: it runs the enqueue sweep itself. Retry delays are shortened for
the worker through NPS_SEND_RETRY_BASE_SECONDS.

Where the kill lands: the SMTP server holds every connection at RCPT after a number of
messages, so the worker dies with messages in flight but none accepted and unrecorded. (A kill
in the instant between the server's "250 accepted" and the worker's "sent" UPDATE would send
that one message again: the sweep resends what it cannot prove was sent, see
``surveys.services.invitations_send``.)
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import importlib
import os
import signal
import subprocess
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.utils import timezone

from nps_project.celery import app as celery_app
from surveys.models import Invitation
from surveys.services import invitations_create, invitations_enqueue_due
from tests.e2e.conftest import WORKER_COMMAND, database_url, free_port
from tests.factories import ContactFactory, PartnerFactory, ProgramFactory, WaveFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BATCH = 10


class GatedSink:
    """Keeps every accepted message; after ``hold_after`` messages it holds each new RCPT until
    the gate opens (asynchronously, so the server stays responsive)."""

    def __init__(self, hold_after: int | None = None, delay: float = 0.005):
        self.messages = []
        self.hold_after = hold_after
        self.delay = delay
        self.gate = threading.Event()
        self.held = 0
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        await asyncio.sleep(self.delay)
        if self.hold_after is not None and len(self.messages) >= self.hold_after:
            with self._lock:
                self.held += 1
            while not self.gate.is_set():
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def recipients(self) -> collections.Counter:
        with self._lock:
            return collections.Counter(str(m["To"]) for m in self.messages)

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the sink has {self.recipients()}")


class Worker:
    """A `celery worker` in its own process group, so SIGKILL takes its pool children too."""

    def __init__(self, *, smtp_port: int, log_path: Path, **extra_env):
        self.log_path = log_path
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_TIMEOUT": "10",
            "NPS_VAR_DIR": str(settings.VAR_DIR),
            "NPS_SEND_BATCH_SIZE": str(BATCH),
            **extra_env,
        }
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                WORKER_COMMAND,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while log_path.read_bytes().count(b" ready.") < self._ready_before + 1:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("the worker did not start:\n" + log_path.read_text())
            time.sleep(0.2)

    _ready_before = 0

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=20)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(autouse=True)
def default_lists(transactional_db):
    """The tiers, partner types and roles of the data migration: an earlier transactional test
    flushed them."""
    from django.apps import apps

    importlib.import_module("surveys.migrations.0002_defaults").create_defaults(apps, None)


@pytest.fixture
def workers(tmp_path):
    """Starts workers on demand; stops them all and forgets the broker's unacknowledged tasks
    of a killed worker afterwards (Redis would hand them to a later test's worker)."""
    celery_app.control.purge()
    started = []
    log_path = tmp_path / "worker.log"
    log_path.touch()

    def start(**kwargs) -> Worker:
        Worker._ready_before = log_path.read_bytes().count(b" ready.")
        worker = Worker(log_path=log_path, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()  # a warm shutdown would wait for tasks retrying on a countdown
    celery_app.control.purge()
    if settings.CELERY_BROKER_URL.startswith("redis"):
        with celery_app.connection_for_write() as connection:
            connection.default_channel.client.delete("unacked", "unacked_index")


def start_sink(sink, port: int | None = None) -> Controller:
    controller = Controller(sink, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    return controller


def wave_of(count: int):
    partner = PartnerFactory()
    contacts = [
        ContactFactory(partner=partner, email=f"contact{n:03d}@partner.example")
        for n in range(count)
    ]
    program = ProgramFactory(throttle_days=0)
    now = timezone.now()
    wave = WaveFactory(
        program=program,
        opens_at=now - dt.timedelta(minutes=1),
        closes_at=now + dt.timedelta(days=14),
    )
    return wave, {c.email for c in contacts}


def sweep_as_if_later():
    """The reconciliation sweep as it runs once the stale window has passed (no worker is
    alive now, so nothing in flight is taken from a live worker)."""
    later = timezone.now() + dt.timedelta(seconds=settings.NPS_SEND_STALE_SECONDS + 1)
    return invitations_enqueue_due(now=later)


def test_a_worker_killed_mid_wave_and_restarted_emails_every_invitation_once(workers, settings):
    settings.NPS_SEND_BATCH_SIZE = BATCH
    sink = GatedSink(hold_after=35)
    controller = start_sink(sink)
    try:
        wave, emails = wave_of(120)
        first = workers(smtp_port=controller.port)
        assert invitations_create(wave=wave) == 120  # enqueues 12 batches after commit

        # Both pool processes end up held at RCPT with a message in flight: kill them there.
        sink.wait_for(lambda: sink.held >= 2, timeout=60, what="both senders to be held")
        first.kill()
        sink.gate.set()
        accepted_before = sum(sink.recipients().values())
        assert 35 <= accepted_before < 120
        in_flight = Invitation.objects.filter(wave=wave, status="sending").count()
        assert in_flight >= 1  # the kill left claimed, unsent rows behind

        assert sweep_as_if_later() > 0
        workers(smtp_port=controller.port)
        sink.wait_for(lambda: len(sink.recipients()) == 120, timeout=90, what="every invitation")
        time.sleep(2)  # anything sent twice would arrive now
    finally:
        controller.stop()

    counts = sink.recipients()
    assert set(counts) == emails
    assert max(counts.values()) == 1, [e for e, n in counts.items() if n > 1]
    assert Invitation.objects.filter(wave=wave, status="sent").count() == 120


def test_sends_retry_while_the_smtp_server_is_down_and_all_arrive_once_it_is_back(
    workers, settings
):
    settings.NPS_SEND_BATCH_SIZE = BATCH
    sink = GatedSink(delay=0.01)
    port = free_port()
    controller = start_sink(sink, port)
    try:
        wave, emails = wave_of(80)
        workers(
            smtp_port=port,
            NPS_SEND_RETRY_BASE_SECONDS="0.25",
            NPS_SEND_MAX_ATTEMPTS="10",
        )
        invitations_create(wave=wave)

        sink.wait_for(lambda: sum(sink.recipients().values()) >= 20, 60, "the first emails")
        controller.stop()  # the server goes away mid-wave
        time.sleep(2)
        failed_meanwhile = Invitation.objects.filter(wave=wave).exclude(status="sent").count()
        assert failed_meanwhile > 0
        controller = start_sink(sink, port)  # ...and comes back on the same port

        # Beat's part: the sweep takes the rows whose back-off has passed.
        deadline = time.monotonic() + 90
        while len(sink.recipients()) < 80 and time.monotonic() < deadline:
            invitations_enqueue_due()
            time.sleep(0.5)
        time.sleep(2)
    finally:
        controller.stop()

    counts = sink.recipients()
    assert set(counts) == emails
    assert max(counts.values()) == 1, [e for e, n in counts.items() if n > 1]
    assert Invitation.objects.filter(wave=wave, status="sent").count() == 80
    assert not Invitation.objects.filter(wave=wave, status="failed").exists()
