"""Bench: create, queue and deliver one large wave, against the ceilings of the same machine.

Usage (PostgreSQL and Redis; the database named in DATABASE_URL is DROPPED and re-created, so
its name must start with ``nps_bench``; the Redis database is purged)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nps_bench_del \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \\
    .venv/bin/python bench/wave_delivery.py --size 100000

What it does, in one run:

1. creates and migrates the database and loads ``--size`` contacts server-side
   (``INSERT ... SELECT generate_series``; one partner in ten is in APAC, the others in EMEA);
2. ceiling 1: Django ``bulk_create`` of ``--size`` plain invitation rows (batches of 2,000,
   the same batch size as the product) into a scratch wave, timed, then deleted;
3. counts the SQL queries of ``invitations_create`` for a wave of a program whose audience is
   APAC (a tenth of the contacts), then deletes that wave;
4. product: ``invitations_create`` for the real wave, timed: the eligibility query, the bulk
   inserts and the queueing of every send task on Redis; its SQL queries are counted;
5. starts the SMTP sink in a process of its own (so neither the ceiling's sender nor the
   workers share a GIL with it), and checks it is not the bottleneck: ``smtplib`` sends the
   bytes of a rendered invitation in a tight loop over one connection, then over as many
   connections at once, from as many processes, as the workers use;
6. ceiling 2: Django's SMTP backend sending ``--smtp-ceiling`` pre-built messages (a rendered
   invitation, re-addressed) over one reused connection to that sink;
7. starts ``--workers`` Celery worker processes (prefork, ``--concurrency`` each) sending to
   the same sink, and times the delivery of the whole wave from the first to the last
   ``sent_at``; reads each worker process's peak RSS (VmHWM) and the server-side transaction
   count (``pg_stat_database.xact_commit``: every autocommit statement is one) during delivery;
8. ceiling 2 again, after the delivery (the machine may be busier at one time than the other:
   the ratio is taken against the higher of the two);
9. counts the SQL queries of ``invitations_send`` in-process for 1,000 and for 5,000 more
   invitations (fewer when ``--size`` is smaller), to show the queries per 1,000 do not grow;
10. prints every figure and the ratios (targets: creation >= 50% of bulk_create, delivery >=
    70% of the one-connection SMTP rate).

The sink (``--sink fast``, the default) is a minimal SMTP server on asyncio that answers each
command and counts messages and recipients; it takes several thousand messages a second from
one ``smtplib`` connection. aiosmtpd (``--sink aiosmtpd``) parses each message and takes about
a thousand a second on the same machine, about what Django's sender can send, so it would
measure itself rather than the senders.

Touches only loopback (PostgreSQL, Redis, the sink); bounded by ``--timeout`` for the delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import itertools
import logging
import multiprocessing
import os
import signal
import smtplib
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
    parser.add_argument(
        "--sink", choices=["fast", "aiosmtpd"], default="fast", help="the SMTP sink (see above)"
    )
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


class _Counts:
    """What the sink accepted: messages, and messages per recipient."""

    def __init__(self):
        self.messages = 0
        self.recipients = collections.Counter()
        self.lock = threading.Lock()

    def accepted(self, recipients) -> None:
        with self.lock:
            self.messages += 1
            self.recipients.update(recipients)


class _FastSmtp(asyncio.Protocol):
    """Just enough of SMTP for smtplib: answers each command line (pipelined or not) and, after
    DATA, skips to the ``CRLF . CRLF`` that ends the message, then counts it."""

    def __init__(self, counts: _Counts):
        self.counts = counts
        self.buffer = b""
        self.in_data = False
        self.recipients: list[str] = []

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data):
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                self.counts.accepted(self.recipients)
                replies.append(b"250 OK\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"MAIL":
                self.recipients = []
                replies.append(b"250 OK\r\n")
            elif verb == b"RCPT":
                address = line.partition(b"<")[2].partition(b">")[0]
                self.recipients.append(address.decode("utf-8", "replace"))
                replies.append(b"250 OK\r\n")
            elif verb == b"DATA":
                # The end marker's first CRLF may be the one that ends the DATA command.
                self.buffer = b"\r\n" + self.buffer
                self.in_data = True
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"".join(replies) + b"221 Bye\r\n")
                self.transport.close()
                return
            else:  # HELO, RSET, NOOP
                replies.append(b"250 OK\r\n")
        if replies:
            self.transport.write(b"".join(replies))


def _serve_fast(counts: _Counts, port: int, ready: threading.Event) -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(lambda: _FastSmtp(counts), "127.0.0.1", port))
    ready.set()
    loop.run_forever()


def _serve_aiosmtpd(counts: _Counts, port: int, ready: threading.Event) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            counts.accepted(envelope.rcpt_tos)
            return "250 OK"

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    Controller(Handler(), hostname="127.0.0.1", port=port).start()
    ready.set()


def _sink_process(kind: str, port: int, control) -> None:
    """The sink's process: serves SMTP on a thread, answers ``control`` on the main thread
    ("count": messages accepted; "report": messages, distinct recipients, recipients that got
    more than one; "stop")."""
    counts = _Counts()
    ready = threading.Event()
    serve = _serve_fast if kind == "fast" else _serve_aiosmtpd
    threading.Thread(target=serve, args=(counts, port, ready), daemon=True).start()
    ready.wait(30)
    control.send("ready")
    while True:
        command = control.recv()
        with counts.lock:
            if command == "count":
                control.send(counts.messages)
            elif command == "report":
                twice = sum(1 for n in counts.recipients.values() if n > 1)
                control.send((counts.messages, len(counts.recipients), twice))
            else:
                control.send("stopped")
                return


class SinkProcess:
    """The SMTP sink in a process of its own, on a free loopback port."""

    def __init__(self, kind: str):
        from tests.e2e.conftest import free_port

        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self._control, child = context.Pipe()
        self.process = context.Process(
            target=_sink_process, args=(kind, self.port, child), daemon=True
        )
        self.process.start()
        if not self._control.poll(60) or self._control.recv() != "ready":
            sys.exit("The SMTP sink did not start.")

    def _ask(self, command: str):
        self._control.send(command)
        return self._control.recv()

    def count(self) -> int:
        return self._ask("count")

    def report(self) -> tuple[int, int, int]:
        return self._ask("report")

    def stop(self) -> None:
        self._ask("stop")
        self.process.join(10)


def load(size: int):
    from django.db import connection

    from surveys.models import PartnerType, Program, Tier

    tier = Tier.objects.get(name="Gold").pk
    ptype = PartnerType.objects.get(name="Reseller").pk
    partners = max(size // 5, 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO surveys_partner (name, tier_id, partner_type_id, region, is_active,"
            " created_at, updated_at) SELECT 'Partner ' || g, %s, %s,"
            " CASE WHEN g %% 10 = 0 THEN 'APAC' ELSE 'EMEA' END, true, now(), now()"
            " FROM generate_series(0, %s - 1) g",
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


def create_queries_sample() -> tuple[int, int]:
    """(invitations, SQL queries) of ``invitations_create`` for a program whose audience is
    APAC, a tenth of the contacts; the wave is deleted and its send tasks purged afterwards."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from nps_project.celery import app as celery_app
    from surveys.models import Program
    from surveys.services import invitations_create

    program = Program.objects.create(
        name="Bench APAC",
        starts_on=dt.date(2020, 1, 1),
        throttle_days=0,
        response_window_days=14,
        regions=["APAC"],
    )
    wave = new_wave(program, "sample")
    with CaptureQueriesContext(connection) as captured:
        created = invitations_create(wave=wave)
    queries = len(captured)
    program.delete()
    celery_app.control.purge()
    return created, queries


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


def send_queries_sample(program, count: int, batch: int) -> tuple[int, int]:
    """(invitations sent, SQL queries) of ``invitations_send`` for ``count`` fresh invitations
    in batches of ``batch``, in this process (the emails go to Django's locmem outbox: only the
    queries are counted)."""
    from django.core import mail
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
    sent = 0
    with CaptureQueriesContext(connection) as captured:
        for start in range(0, len(pks), batch):
            sent += invitations_send(invitation_ids=pks[start : start + batch])
            mail.outbox = []
    return sent, len(captured)


def sample_message(program):
    """A rendered invitation of the wave (the ceiling sends copies of it)."""
    from surveys.models import Invitation
    from surveys.services import invitation_message

    invitation = Invitation.objects.select_related("contact__partner", "wave__program").first()
    return invitation_message(invitation=invitation, token="A" * 32)


def _smtplib_loop(port: int, sender: str, data: bytes, prefix: str, count: int) -> float:
    """smtplib sending ``data`` ``count`` times over one connection; returns the seconds."""
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo()
    started = time.perf_counter()
    for n in range(count):
        client.sendmail(sender, [f"{prefix}{n}@partner.example"], data)
    elapsed = time.perf_counter() - started
    client.quit()
    return elapsed


def sink_sanity(port: int, template, count: int, connections: int) -> tuple[float, float]:
    """What the sink accepts when the senders do no work but SMTP: smtplib sending the bytes
    of ``template`` in a tight loop over one connection, then over ``connections`` at once
    from as many processes (as many as the workers use). Returns both rates."""
    data = template.message().as_bytes(linesep="\r\n")
    sender = template.from_email
    one = count / _smtplib_loop(port, sender, data, "sanity", count)
    each = max(count // connections, 1)
    context = multiprocessing.get_context("spawn")
    with context.Pool(connections) as pool:
        jobs = [(port, sender, data, f"sanity{n}x", each) for n in range(connections)]
        elapsed = pool.starmap(_smtplib_loop, jobs)
    return one, each * connections / max(elapsed)


def ceiling_smtp(template, count: int) -> float:
    """Django's SMTP backend sending ``count`` pre-built messages over one connection."""
    import copy

    from django.core.mail import get_connection

    messages = []
    for n in range(count):
        message = copy.copy(template)
        message.to = [f"ceiling{n}@partner.example"]
        messages.append(message)
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
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max, Min
    from django.test.utils import CaptureQueriesContext

    from nps_project.celery import app as celery_app
    from surveys.models import Invitation
    from surveys.services import invitations_create

    print(f"database {name}, broker {settings.CELERY_BROKER_URL}, size {args.size:,}")
    call_command("migrate", verbosity=0)
    program = load(args.size)
    celery_app.control.purge()

    bulk_rate = ceiling_bulk_create(program, args.size)
    sample_created, sample_create_queries = create_queries_sample()

    wave = new_wave(program, "wave")
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        created = invitations_create(wave=wave)
        create_elapsed = time.perf_counter() - started
    create_rate = created / create_elapsed
    create_queries = len(captured)

    sink = SinkProcess(args.sink)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    template = sample_message(program)
    sanity_rate, sanity_parallel = sink_sanity(
        sink.port, template, args.smtp_ceiling, args.workers * args.concurrency
    )
    smtp_rates = [ceiling_smtp(template, args.smtp_ceiling)]
    before_delivery = sink.count()

    commits_before = xact_commits()
    workers = start_workers(args, sink.port)
    peaks: dict[int, int] = {}
    deadline = time.monotonic() + args.timeout
    try:
        while sink.count() - before_delivery < created and time.monotonic() < deadline:
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
    # Every message so far has its own recipient: the sanity loop's, the ceiling's, the wave's.
    accepted, _recipients, twice = sink.report()
    delivered = accepted - before_delivery

    smtp_rates.append(ceiling_smtp(template, args.smtp_ceiling))
    sink.stop()
    smtp_rate = max(smtp_rates)

    # The in-process samples count queries only: keep their emails in memory.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    small, large = min(1000, args.size), min(5000, args.size)
    send_samples = [send_queries_sample(program, n, args.batch) for n in (small, large)]

    print()
    print(
        f"invitations created and queued: {created:,} in {create_elapsed:.2f} s "
        f"= {create_rate:,.0f}/s"
    )
    print(f"ceiling, bulk_create of {args.size:,} plain rows: {bulk_rate:,.0f}/s")
    print(f"  ratio: {100 * create_rate / bulk_rate:.0f}% (target >= 50%)")
    print(
        f"SQL per 1,000 invitations created: {1000 * create_queries / created:.2f} "
        f"({create_queries} queries for {created:,}), "
        f"{1000 * sample_create_queries / max(sample_created, 1):.2f} "
        f"({sample_create_queries} for {sample_created:,})"
    )
    print(
        f"emails delivered: {sent:,} of {created:,} in {deliver_elapsed:.1f} s "
        f"= {email_rate:,.0f}/s ({args.workers} worker(s) x {args.concurrency} processes, "
        f"{args.batch} per task); the sink got {delivered:,}, recipients emailed twice: "
        f"{twice}"
    )
    print(
        f"sink sanity, smtplib sending pre-built bytes ({len(template.message().as_bytes()):,} "
        f"bytes): {sanity_rate:,.0f}/s over one connection, {sanity_parallel:,.0f}/s over "
        f"{args.workers * args.concurrency} at once ({args.sink} sink, own process)"
    )
    print(
        f"ceiling, Django SMTP backend, {args.smtp_ceiling:,} pre-built messages over one "
        f"connection: {smtp_rates[0]:,.0f}/s before the delivery, {smtp_rates[1]:,.0f}/s after"
    )
    if sanity_rate < 2 * smtp_rate:
        print("  WARNING: the sink takes less than twice the ceiling's rate: it may limit it")
    if sanity_parallel < 1.5 * email_rate:
        print("  WARNING: the sink takes less than 1.5 times the delivery's rate: it may limit it")
    print(f"  ratio: {100 * email_rate / smtp_rate:.0f}% of the higher (target >= 70%)")
    print(
        "worker peak RSS (VmHWM): "
        + ", ".join(f"pid {p}: {kib / 1024:.0f} MiB" for p, kib in sorted(peaks.items()))
        + f"; total {sum(peaks.values()) / 1024:.0f} MiB"
    )
    print(
        "SQL per 1,000 invitations sent, in-process: "
        + ", ".join(f"{1000 * q / max(n, 1):.0f} ({n:,} sent)" for n, q in send_samples)
    )
    print(
        f"server-side transactions during delivery: {commits:,} = "
        f"{1000 * commits / max(sent, 1):.0f} per 1,000 invitations (all statements, "
        f"autocommit)"
    )


if __name__ == "__main__":
    main()
