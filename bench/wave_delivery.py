"""Bench: create, queue and deliver one large wave, against the ceilings of the same machine.

Usage (PostgreSQL and Redis; the database named in DATABASE_URL is DROPPED and re-created, so
its name must start with ``nps_bench``; the Redis database is purged)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nps_bench_del \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \\
    .venv/bin/python bench/wave_delivery.py --size 100000

What it does, in one run:

1. creates and migrates the database and loads ``--size`` contacts server-side
   (``INSERT ... SELECT generate_series``);
2. ceiling 1: Django ``bulk_create`` of ``--size`` plain invitation rows (batches of 2,000,
   the same batch size as the product) into a scratch wave, timed, then deleted;
3. product: ``invitations_create`` for the real wave, timed: the eligibility query, the bulk
   inserts and the queueing of every send task on Redis; its SQL queries are counted;
4. starts a local SMTP sink (aiosmtpd, counting messages) and ``--workers`` Celery worker
   processes (prefork, ``--concurrency`` each), and times the delivery of the whole wave from
   the first to the last ``sent_at``; reads each worker process's peak RSS (VmHWM) and the
   server-side transaction count (``pg_stat_database.xact_commit``: every autocommit statement
   is one) during delivery;
5. counts the SQL queries of ``invitations_send`` in-process for 1,000 and for 5,000 more
   invitations, to show the queries per 1,000 do not grow with the wave;
6. ceiling 2: Django's SMTP backend sending ``--smtp-ceiling`` pre-built messages (a rendered
   invitation, re-addressed) over one reused connection to the same sink;
7. prints every figure and the ratios (targets: creation >= 50% of bulk_create, delivery >= 70%
   of the one-connection SMTP rate).

Touches only loopback (PostgreSQL, Redis, the sink); bounded by ``--timeout`` for the delivery.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_project.settings")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="contacts in the wave")
    parser.add_argument("--batch", type=int, default=200, help="invitations per send task")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="pool size per worker")
    parser.add_argument("--smtp-ceiling", type=int, default=10_000, help="messages, ceiling 2")
    parser.add_argument("--timeout", type=int, default=900, help="seconds for the delivery")
    return parser.parse_args()


def recreate_database() -> str:
    import psycopg

    url = urlparse(os.environ.get("DATABASE_URL", ""))
    name = url.path.lstrip("/")
    if url.scheme not in ("postgres", "postgresql", "pgsql") or not name.startswith("nps_bench"):
        sys.exit("Set DATABASE_URL=postgres://.../nps_bench_<name>: the bench drops that database.")
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("The bench runs against a loopback database only.")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://127.0.0.1"):
        sys.exit("Set CELERY_BROKER_URL=redis://127.0.0.1:6379/<n> (it is purged).")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


class CountingSink:
    def __init__(self):
        self.count = 0
        self.recipients = collections.Counter()
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        with self._lock:
            self.count += 1
            self.recipients.update(envelope.rcpt_tos)
        return "250 OK"


def load(size: int):
    from django.db import connection

    from surveys.models import PartnerType, Program, Tier

    tier = Tier.objects.get(name="Gold").pk
    ptype = PartnerType.objects.get(name="Reseller").pk
    partners = max(size // 5, 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO surveys_partner (name, tier_id, partner_type_id, region, is_active,"
            " created_at, updated_at) SELECT 'Partner ' || g, %s, %s, 'EMEA', true, now(), now()"
            " FROM generate_series(1, %s) g",
            [tier, ptype, partners],
        )
        cursor.execute("SELECT min(id) FROM surveys_partner")
        first = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO surveys_contact (partner_id, name, email, language, is_active, is_key,"
            " bounce_reason, created_at, updated_at)"
            " SELECT %s + (g %% %s), 'Contact ' || g, 'contact' || g || '@partner.example',"
            " (ARRAY['en','de','fr','es'])[1 + g %% 4], true, false, '', now(), now()"
            " FROM generate_series(1, %s) g",
            [first, partners, size],
        )
        cursor.execute("VACUUM ANALYZE")
    return Program.objects.create(
        name="Bench", starts_on=dt.date(2020, 1, 1), throttle_days=0, response_window_days=14
    )


_PERIODS = itertools.count()


def new_wave(program, label: str):
    from django.utils import timezone

    from surveys.models import Wave

    now = timezone.now()
    return Wave.objects.create(
        program=program,
        period_start=now.date() - dt.timedelta(days=next(_PERIODS)),
        label=label,
        opens_at=now - dt.timedelta(minutes=1),
        closes_at=now + dt.timedelta(days=14),
    )


def ceiling_bulk_create(program, size: int) -> float:
    from django.db import connection

    from surveys.models import Contact, Invitation

    wave = new_wave(program, "ceiling")
    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[:size])
    started = time.perf_counter()
    for start in range(0, len(ids), 2000):
        Invitation.objects.bulk_create(
            [Invitation(wave=wave, contact_id=cid) for cid in ids[start : start + 2000]]
        )
    elapsed = time.perf_counter() - started
    wave.delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE surveys_invitation")
    return len(ids) / elapsed


def xact_commits() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


def peak_rss_kib(pid: int) -> dict[int, int]:
    """VmHWM of a process and its children, by pid."""
    peaks = {}
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    pids += [int(c) for c in children]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[p] = int(line.split()[1])
        except OSError:
            pass
    return peaks


def start_workers(args, smtp_port: int) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "NPS_SEND_BATCH_SIZE": str(args.batch),
        "LOG_LEVEL": "WARNING",
    }
    workers = []
    for n in range(args.workers):
        workers.append(
            subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "nps_project", "worker",
                    "--loglevel", "WARNING", "--concurrency", str(args.concurrency),
                    "--without-heartbeat", "--without-gossip", "--without-mingle",
                    "-n", f"bench{n}@%h",
                ],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )  # fmt: skip
    return workers


def queries_per_thousand(program, count: int, batch: int) -> float:
    """SQL queries of invitations_send for ``count`` fresh invitations, per 1,000."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys.models import Contact, Invitation
    from surveys.services import invitations_send

    wave = new_wave(program, f"sample-{count}")
    ids = list(Contact.objects.order_by("-pk").values_list("pk", flat=True)[:count])
    Invitation.objects.bulk_create(
        [Invitation(wave=wave, contact_id=cid) for cid in ids], batch_size=2000
    )
    pks = list(Invitation.objects.filter(wave=wave).order_by("pk").values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as captured:
        for start in range(0, len(pks), batch):
            invitations_send(invitation_ids=pks[start : start + batch])
    return 1000 * len(captured) / count


def ceiling_smtp(program, count: int) -> float:
    from django.core.mail import get_connection

    from surveys.models import Invitation
    from surveys.services import invitation_message

    invitation = Invitation.objects.select_related("contact__partner", "wave__program").first()
    template = invitation_message(invitation=invitation, token="A" * 32)
    messages = []
    for n in range(count):
        message = invitation_message(invitation=invitation, token="A" * 32)
        message.to = [f"ceiling{n}@partner.example"]
        messages.append(message)
    del template
    connection = get_connection("django.core.mail.backends.smtp.EmailBackend")
    connection.open()
    started = time.perf_counter()
    for message in messages:
        connection.send_messages([message])
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def main() -> None:
    args = parse_args()
    name = recreate_database()
    os.environ["NPS_SEND_BATCH_SIZE"] = str(args.batch)
    import django

    django.setup()
    from aiosmtpd.controller import Controller
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max, Min
    from django.test.utils import CaptureQueriesContext

    from nps_project.celery import app as celery_app
    from surveys.models import Invitation
    from surveys.services import invitations_create

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    print(f"database {name}, broker {settings.CELERY_BROKER_URL}, size {args.size:,}")
    call_command("migrate", verbosity=0)
    program = load(args.size)
    celery_app.control.purge()

    bulk_rate = ceiling_bulk_create(program, args.size)

    wave = new_wave(program, "wave")
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        created = invitations_create(wave=wave)
        create_elapsed = time.perf_counter() - started
    create_rate = created / create_elapsed
    create_queries = len(captured)

    sink = CountingSink()
    from tests.e2e.conftest import free_port

    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    commits_before = xact_commits()
    workers = start_workers(args, port)
    peaks: dict[int, int] = {}
    deadline = time.monotonic() + args.timeout
    try:
        while sink.count < created and time.monotonic() < deadline:
            time.sleep(1)
            for worker in workers:
                peaks.update(peak_rss_kib(worker.pid))
        time.sleep(2)
        for worker in workers:
            peaks.update(peak_rss_kib(worker.pid))
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    commits = xact_commits() - commits_before
    span = Invitation.objects.filter(wave=wave).aggregate(a=Min("sent_at"), b=Max("sent_at"))
    sent = Invitation.objects.filter(wave=wave, status="sent").count()
    deliver_elapsed = (span["b"] - span["a"]).total_seconds() if span["a"] else float("nan")
    email_rate = sent / deliver_elapsed if deliver_elapsed else float("nan")
    duplicates = sum(1 for n in sink.recipients.values() if n > 1)
    delivered = sink.count  # before the samples and the ceiling below add their own

    # The in-process samples count queries only: keep their emails in memory, not in the outbox.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    sample_small = queries_per_thousand(program, 1000, args.batch)
    sample_large = queries_per_thousand(program, 5000, args.batch)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    smtp_rate = ceiling_smtp(program, args.smtp_ceiling)
    controller.stop()

    print()
    print(
        f"invitations created and queued: {created:,} in {create_elapsed:.2f} s "
        f"= {create_rate:,.0f}/s ({create_queries} SQL queries = "
        f"{1000 * create_queries / created:.2f} per 1,000)"
    )
    print(f"ceiling, bulk_create of {args.size:,} plain rows: {bulk_rate:,.0f}/s")
    print(f"  ratio: {100 * create_rate / bulk_rate:.0f}% (target >= 50%)")
    print(
        f"emails delivered: {sent:,} of {created:,} in {deliver_elapsed:.1f} s "
        f"= {email_rate:,.0f}/s ({args.workers} worker(s) x {args.concurrency} processes, "
        f"{args.batch} per task); sink got {delivered:,}, recipients emailed twice: "
        f"{duplicates}"
    )
    print(
        f"ceiling, Django SMTP backend, {args.smtp_ceiling:,} pre-built messages over one "
        f"connection: {smtp_rate:,.0f}/s"
    )
    print(f"  ratio: {100 * email_rate / smtp_rate:.0f}% (target >= 70%)")
    print(
        "worker peak RSS (VmHWM): "
        + ", ".join(f"pid {p}: {kib / 1024:.0f} MiB" for p, kib in sorted(peaks.items()))
        + f"; total {sum(peaks.values()) / 1024:.0f} MiB"
    )
    print(
        f"SQL per 1,000 invitations sent, in-process: {sample_small:.0f} (1,000 sent), "
        f"{sample_large:.0f} (5,000 sent)"
    )
    print(
        f"server-side transactions during delivery: {commits:,} = "
        f"{1000 * commits / max(sent, 1):.0f} per 1,000 invitations (all statements, "
        f"autocommit)"
    )


if __name__ == "__main__":
    main()
