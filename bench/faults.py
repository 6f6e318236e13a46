"""Bench: faults, with nothing lost. Real components are broken on purpose and the product is
checked afterwards, with counts.

Usage (as root or as a user who may run PostgreSQL's initdb; touches only loopback and its own
temporary folder)::

    .venv/bin/python bench/faults.py            # the default sizes: a few minutes
    .venv/bin/python bench/faults.py --wave 10000 --answers 2000 --escalate 300

It starts its own PostgreSQL cluster (``initdb`` as the ``postgres`` OS user, port 55432) and
its own ``redis-server`` (port 6390, no persistence), never the machine's shared servers; an
SMTP sink that counts messages per recipient; a webhook receiver that counts deliveries by
event id; a real Celery worker (2 pool processes) and gunicorn (2 sync workers), both on the
private PostgreSQL and Redis. This process plays Celery beat: every ``--beat-interval`` seconds
(5, as beat's settle tick) it publishes the settle tick (and in d the escalation sweep) for the
worker, and runs the reconciliation sweeps itself (enqueue due invitations, repair follow-ups,
re-queue stale staff emails, notices and webhook deliveries) with every "stale" window
shortened to ``--stale`` seconds, so a run takes minutes, not hours.

Scenarios, in order (each prints what it did and what it checked):

a. Redis is killed (SIGKILL: every queued task is lost) in the middle of a wave and started
   again, empty, while partners also answer the survey. Every invitation is emailed exactly
   once; every answer acknowledged is stored; every detractor gets a follow-up.
b. PostgreSQL is stopped (``--pg-stop-mode``, default ``immediate``: a crash as far as clients
   go) and started again while partners answer over HTTP (a GET of the form, then a POST, at a
   steady rate from ``--clients`` browsers). An acknowledged answer (303 to the thank-you
   page) is stored; a refused one got the retry page (503 saying it was not saved and to try
   again), never a 500; after retrying, each invitation has one response, each detractor a
   follow-up, each response one ``response.created`` webhook event.
c. The SMTP server goes away for ``--smtp-down`` seconds in the middle of a wave and comes
   back on the same port: every invitation arrives exactly once, none is marked failed.
d. The worker is SIGKILLed (its whole process group) while it escalates overdue follow-ups and
   posts webhooks to a slow receiver, then started again: every escalation rule fires once per
   follow-up, each escalation email reaches each manager once, and each ``followup.overdue``
   event reaches the receiver at least once (receivers de-duplicate by event id; the
   duplicates are counted and reported).

At the end: the whole database is checked (no detractor without a follow-up, no invitation of
an open wave unsent, nothing left queued), a summary table is printed, and the exit status is
1 if any check failed. NOTE rows are facts worth knowing that are not failures (e.g. webhook
duplicates, which the at-least-once contract allows).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import itertools
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "nps_project.settings"

from bench.faultkit import (  # noqa: E402
    Gunicorn,
    PrivatePostgres,
    PrivateRedis,
    SmtpSink,
    WebhookReceiver,
    Worker,
    free_port,
    port_is_free,
    wait_until,
)

DATABASE = "nps_faults"
TOKEN_IN_LINK = re.compile(r"/s/([A-Za-z0-9_-]{20,})/")
# The answer is stored: a redirect to the thank-you page (303 See Other, or Django's 302).
SAVED = ("saved (302)", "saved (303)")
CSRF_IN_FORM = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_argument_group("sizes")
    size.add_argument("--wave", type=int, default=3000, help="invitations in wave a")
    size.add_argument(
        "--redis-answers", type=int, default=100, help="answers posted while Redis is down (a)"
    )
    size.add_argument("--answers", type=int, default=600, help="answers posted in b")
    size.add_argument("--clients", type=int, default=16, help="concurrent browsers in b")
    size.add_argument("--rate", type=float, default=30.0, help="answers started per second")
    size.add_argument("--smtp-wave", type=int, default=1000, help="invitations in wave c")
    size.add_argument("--escalate", type=int, default=100, help="overdue follow-ups in d")
    size.add_argument("--managers", type=int, default=2, help="managers emailed per escalation")
    size.add_argument("--batch", type=int, default=50, help="invitations per send task")
    fault = parser.add_argument_group("faults")
    fault.add_argument("--redis-down", type=float, default=3.0, help="seconds Redis is away")
    fault.add_argument("--pg-down", type=float, default=3.0, help="seconds PostgreSQL is away")
    fault.add_argument(
        "--pg-stop-mode", choices=["immediate", "fast", "smart"], default="immediate"
    )
    fault.add_argument("--smtp-down", type=float, default=8.0, help="seconds SMTP is away")
    fault.add_argument(
        "--webhook-delay", type=float, default=0.05, help="seconds the slow receiver takes"
    )
    run = parser.add_argument_group("run")
    run.add_argument("--stale", type=float, default=15.0, help="every stale window, seconds")
    run.add_argument("--beat-interval", type=float, default=5.0, help="seconds between sweeps")
    run.add_argument("--timeout", type=float, default=240.0, help="seconds per recovery wait")
    run.add_argument("--pg-port", type=int, default=55432)
    run.add_argument("--redis-port", type=int, default=6390)
    run.add_argument("--seed", type=int, default=8)
    run.add_argument(
        "--scenarios", default="abcd", help="which to run, in order (each works alone too)"
    )
    run.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    return parser.parse_args()


# --- Reporting ------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    scenario: str
    status: str  # PASS, FAIL or NOTE
    what: str
    detail: str


class Report:
    def __init__(self):
        self.rows: list[Row] = []

    def check(self, scenario: str, what: str, ok: bool, detail: str = "") -> bool:
        return self._add(Row(scenario, "PASS" if ok else "FAIL", what, detail))

    def note(self, scenario: str, what: str, detail: str = "") -> bool:
        return self._add(Row(scenario, "NOTE", what, detail))

    def _add(self, row: Row) -> bool:
        self.rows.append(row)
        print(f"  {row.status}  {row.what}" + (f": {row.detail}" if row.detail else ""))
        return row.status != "FAIL"

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "FAIL"]

    def table(self) -> str:
        width = max(len(r.what) for r in self.rows)
        lines = [f"{'':2}{'scenario':<9}{'result':<7}{'check':<{width}}  figures", "-" * 100]
        for r in self.rows:
            lines.append(f"  {r.scenario:<9}{r.status:<7}{r.what:<{width}}  {r.detail}")
        return "\n".join(lines)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def db_retry(fn, *, attempts: int = 60):
    """Run a read in this process, reconnecting while PostgreSQL comes back."""
    from django.db import InterfaceError, OperationalError, connection

    for _ in range(attempts - 1):
        try:
            return fn()
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(1)
    return fn()


# --- Beat -----------------------------------------------------------------------------------


class Beat(threading.Thread):
    """Celery beat's sweeps, run in this process every ``interval`` seconds, with the stale
    windows shortened to ``stale`` seconds. Counts what each sweep did and how it failed."""

    def __init__(self, *, interval: float, stale: float):
        super().__init__(daemon=True)
        self.interval = interval
        self.stale = dt.timedelta(seconds=stale)
        self.escalate = False
        self.totals: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.first_traceback: dict[str, str] = {}
        self._halt = threading.Event()

    def sweeps(self):
        from django.conf import settings
        from django.utils import timezone

        import webhooks.services as webhook_services
        from followups import services as followups
        from followups.tasks import escalate_overdue_followups
        from surveys import services as surveys
        from surveys.tasks import settle_responses
        from webhooks.tasks import deliver_webhook

        settings.NPS_SEND_STALE_SECONDS = self.stale.total_seconds()
        stale = self.stale

        def webhooks_reconcile() -> int:
            # deliveries_due counts "stale" as 15 minutes and "due" as one minute old: shift
            # its clock so both mean ``stale`` seconds.
            webhook_services.STALE_AFTER = dt.timedelta(minutes=1)
            later = timezone.now() + dt.timedelta(minutes=1) - stale
            due = webhook_services.deliveries_due(now=later)
            for delivery_id in due:
                deliver_webhook.delay(delivery_id)
            return len(due)

        def publish(task):
            def send() -> int:
                task.delay()
                return 1

            return send

        yield "invitations_enqueue_due", surveys.invitations_enqueue_due
        # Beat's settle tick (every 5 s): the answers' follow-ups and webhooks, in the worker.
        yield "settle_responses published", publish(settle_responses)
        yield "followups_reconcile", followups.followups_reconcile
        yield (
            "staff_emails_requeue_stale",
            lambda: followups.staff_emails_requeue_stale(older_than=stale),
        )
        yield "notices_requeue_stale", lambda: followups.notices_requeue_stale(older_than=stale)
        yield "webhooks_reconcile", webhooks_reconcile
        if self.escalate:
            yield "escalate_overdue_followups published", publish(escalate_overdue_followups)

    def run_once(self) -> None:
        from django.db import connection

        for name, sweep in self.sweeps():
            try:
                self.totals[name] += sweep() or 0
            except Exception as exc:  # noqa: BLE001 - a sweep failing during a fault is counted
                key = f"{name}: {type(exc).__name__}"
                self.errors[key] += 1
                self.first_traceback.setdefault(key, traceback.format_exc())
                connection.close()

    def run(self) -> None:
        from django.db import connection

        while not self._halt.is_set():
            self.run_once()
            self._halt.wait(self.interval)
        connection.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=120)

    def since(self, before: collections.Counter) -> str:
        done = self.totals - before
        return ", ".join(f"{k} {v}" for k, v in sorted(done.items())) or "nothing"


# --- Partners answering over HTTP -----------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    token: str
    method: str
    status: int | None  # None: no HTTP answer at all
    kind: str
    at: float
    excerpt: str = ""


def classify(method: str, response) -> str:
    body = response.text.lower() if response is not None else ""
    if response is None:
        return "no answer"
    code = response.status_code
    if (
        method == "POST"
        and code in (302, 303)
        and "/thanks/" in response.headers.get("Location", "")
    ):
        return f"saved ({code})"
    if method == "GET" and code == 200:
        return "form (200)"
    if code == 503:
        says_retry = "try again" in body or "reload" in body
        says_unsaved = method == "GET" or "could not save" in body or "not saved" in body
        return "retry page (503)" if says_retry and says_unsaved else "503 without the message"
    if code >= 500:
        return f"server error ({code})"
    return f"other ({code})"


class Browser:
    """One partner's browser: a requests session (the partner pages set no cookie; a CSRF
    token found in a page would be sent back, as a browser would)."""

    def __init__(self, base_url: str):
        import requests

        self.base = base_url
        self.session = requests.Session()
        self.csrf = ""
        self.last_page = ""

    def get(self, token: str) -> Outcome:
        import requests

        try:
            response = self.session.get(f"{self.base}/s/{token}/", timeout=30)
        except requests.RequestException as exc:
            return Outcome(token, "GET", None, "no answer", time.monotonic(), str(exc)[:200])
        self.last_page = response.text
        found = CSRF_IN_FORM.search(response.text)
        if found:
            self.csrf = found.group(1)
        kind = classify("GET", response)
        return Outcome(
            token, "GET", response.status_code, kind, time.monotonic(), _excerpt(response)
        )

    def post(self, token: str, score: int, comment: str) -> Outcome:
        import requests

        data = {"csrfmiddlewaretoken": self.csrf, "score": str(score), "comment": comment}
        try:
            response = self.session.post(
                f"{self.base}/s/{token}/", data=data, allow_redirects=False, timeout=30
            )
        except requests.RequestException as exc:
            return Outcome(token, "POST", None, "no answer", time.monotonic(), str(exc)[:200])
        found = CSRF_IN_FORM.search(response.text)
        if found:  # the retry page carries the form's token too
            self.csrf = found.group(1)
        kind = classify("POST", response)
        return Outcome(
            token, "POST", response.status_code, kind, time.monotonic(), _excerpt(response)
        )


def _excerpt(response) -> str:
    """The page's title and first paragraph, as a person reads them."""
    html = response.text
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    paragraph = re.search(r"<p>(.*?)</p>", html, re.S)
    parts = [m.group(1) for m in (title, paragraph) if m]
    return " | ".join(" ".join(re.sub(r"<[^>]+>", " ", p).split()) for p in parts)[:240]


class AnswerStorm:
    """Partners answering: each answer a GET of the form, then a POST, started at ``rate`` per
    second by ``clients`` browsers. ``first_pass`` posts each answer once; ``retry_failed``
    posts the ones not acknowledged again until they are (as a partner on the retry page)."""

    def __init__(self, base_url: str, answers: list[tuple[str, int, str]], *, clients: int):
        self.answers = answers
        self.clients = [Browser(base_url) for _ in range(clients)]
        self.outcomes: list[Outcome] = []
        self.acknowledged: dict[str, int] = {}  # token -> the score the 303 acknowledged
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Each browser opens a form once first, as a partner does (the form sets no cookie
        and takes no CSRF token: the link is its credential)."""
        for browser, (token, _score, _comment) in zip(
            self.clients, itertools.cycle(self.answers), strict=False
        ):
            outcome = browser.get(token)
            if outcome.status != 200 or 'name="score"' not in browser.last_page:
                raise RuntimeError(f"the form did not open: {outcome}")

    def _record(self, outcome: Outcome, score: int | None = None) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            if outcome.kind in SAVED:
                self.acknowledged[outcome.token] = score

    def first_pass(self, rate: float) -> None:
        counter = itertools.count()
        start = time.monotonic()

        def client(browser: Browser):
            while True:
                index = next(counter)
                if index >= len(self.answers):
                    return
                token, score, comment = self.answers[index]
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self._record(browser.get(token))
                self._record(browser.post(token, score, comment), score)

        threads = [threading.Thread(target=client, args=(b,)) for b in self.clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def unacknowledged(self) -> list[tuple[str, int, str]]:
        with self._lock:
            return [a for a in self.answers if a[0] not in self.acknowledged]

    def retry_failed(self, *, timeout: float) -> None:
        pending = collections.deque(self.unacknowledged())
        deadline = time.monotonic() + timeout

        def client(browser: Browser):
            while time.monotonic() < deadline:
                with self._lock:
                    if not pending:
                        return
                    token, score, comment = pending.popleft()
                outcome = browser.post(token, score, comment)
                self._record(outcome, score)
                if outcome.kind not in SAVED:
                    time.sleep(0.5)
                    with self._lock:
                        pending.append((token, score, comment))

        threads = [threading.Thread(target=client, args=(b,)) for b in self.clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def kinds(self, method: str, since: float = 0.0, until: float = float("inf")) -> dict:
        with self._lock:
            return dict(
                collections.Counter(
                    o.kind for o in self.outcomes if o.method == method and since <= o.at < until
                )
            )

    def samples(self, method: str, kind: str, limit: int = 2) -> list[str]:
        with self._lock:
            return [o.excerpt for o in self.outcomes if o.method == method and o.kind == kind][
                :limit
            ]

    def bad(self) -> list[Outcome]:
        """Every outcome that is neither the form, a saved answer nor the retry page."""
        good = {"form (200)", "retry page (503)", *SAVED}
        with self._lock:
            return [o for o in self.outcomes if o.kind not in good]


# --- The bench ------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, *, root: Path, pg, redis, sink, receiver, web_port: int, env):
        self.args = args
        self.root = root
        self.pg, self.redis, self.sink, self.receiver = pg, redis, sink, receiver
        self.web_port = web_port
        self.env = env
        self.report = Report()
        self.random = random.Random(args.seed)
        self.worker: Worker | None = None
        self.workers_started = 0
        self.web: Gunicorn | None = None
        self.beat = Beat(interval=args.beat_interval, stale=args.stale)
        self.used_tokens: set[str] = set()

    # -- set-up --

    def start_worker(self) -> Worker:
        self.workers_started += 1
        self.worker = Worker(self.env, self.root / "worker.log", f"faults{self.workers_started}")
        return self.worker

    def setup(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from nps_project import roles
        from webhooks.services import subscription_create

        User = get_user_model()  # noqa: N806
        managers = Group.objects.get(name=roles.CS_MANAGER)
        for n in range(self.args.managers):
            user = User.objects.create_user(
                username=f"manager{n}", email=f"manager{n}@managers.example"
            )
            user.groups.add(managers)
        # Fast: every answer and new follow-up. Slow: escalations (scenario d).
        subscription_create(
            url=self.receiver.url("/fast"), events=["response.created", "followup.created"], by=None
        )
        subscription_create(url=self.receiver.url("/slow"), events=["followup.overdue"], by=None)
        self.web = Gunicorn(self.env, self.web_port, self.root)
        self.start_worker()
        self.beat.start()

    def new_wave(self, name: str, size: int):
        """A program whose audience is a region of ``size`` new contacts, and its open wave."""
        from django.utils import timezone

        from surveys.models import Contact, Partner, PartnerType, Program, Tier, Wave

        tier, ptype = Tier.objects.get(name="Gold"), PartnerType.objects.get(name="Reseller")
        region = f"Faults {name}"
        partners = Partner.objects.bulk_create(
            [
                Partner(name=f"{name} partner {n}", tier=tier, partner_type=ptype, region=region)
                for n in range(max(size // 3, 1))
            ]
        )
        suffix = f"@{name}.partners.example"
        Contact.objects.bulk_create(
            [
                Contact(
                    partner=partners[n % len(partners)],
                    name=f"Contact {n}",
                    email=f"c{n:06d}{suffix}",
                    language=["en", "de", "fr", "es", "ja"][n % 5],
                )
                for n in range(size)
            ],
            batch_size=2000,
        )
        program = Program.objects.create(
            name=f"Faults {name}", regions=[region], throttle_days=0, starts_on=dt.date(2020, 1, 1)
        )
        now = timezone.now()
        wave = Wave.objects.create(
            program=program,
            period_start=now.date(),
            label=f"Faults {name}",
            opens_at=now - dt.timedelta(minutes=1),
            closes_at=now + dt.timedelta(days=14),
        )
        return wave, suffix

    def invitation_states(self, wave) -> dict:
        from django.db.models import Count

        from surveys.models import Invitation

        return dict(
            db_retry(
                lambda: list(
                    Invitation.objects.filter(wave=wave)
                    .values_list("status")
                    .annotate(n=Count("pk"))
                    .order_by()
                )
            )
        )

    def wait_for_wave(self, wave, suffix: str, size: int) -> None:
        def done():
            states = self.invitation_states(wave)
            return states.get("sent", 0) == size and len(self.sink.recipients(suffix)) == size

        try:
            wait_until(done, timeout=self.args.timeout, what="every invitation", interval=1)
        except TimeoutError as exc:
            say(f"{exc}: {self.invitation_states(wave)}")
        time.sleep(3)  # anything sent twice would arrive now

    def check_wave(self, scenario: str, wave, suffix: str, size: int) -> None:
        counts = self.sink.recipients(suffix)
        twice = {r: n for r, n in counts.items() if n > 1}
        states = self.invitation_states(wave)
        R = self.report  # noqa: N806
        R.check(
            scenario,
            "every invitation emailed",
            len(counts) == size,
            f"{len(counts):,} of {size:,} recipients reached",
        )
        R.check(
            scenario,
            "no invitation emailed twice",
            not twice,
            f"{len(twice)} recipients got more than one"
            + (f" (e.g. {sorted(twice.items())[:3]})" if twice else ""),
        )
        R.check(
            scenario,
            "every invitation marked sent",
            states == {"sent": size},
            ", ".join(f"{k} {v:,}" for k, v in sorted(states.items())),
        )

    def tokens_from(self, suffix: str, count: int) -> list[str]:
        """Survey links' tokens read from the emails the sink received, not used before."""
        tokens = []
        for _recipient, _subject, body in self.sink.parsed(suffix):
            if len(tokens) == count:
                break
            found = TOKEN_IN_LINK.search(body)
            if found and found.group(1) not in self.used_tokens:
                tokens.append(found.group(1))
                self.used_tokens.add(found.group(1))
        return tokens

    def links(self, name: str, count: int) -> dict[int, str]:
        """Survey links of ``count`` invitations of a new wave, marked sent and issued by the
        service as the sending would ({invitation id: token}): for a scenario run without a."""
        from django.utils import timezone

        from surveys.models import Contact, Invitation
        from surveys.services import tokens_issue

        wave, suffix = self.new_wave(name, count)
        Invitation.objects.bulk_create(
            [
                Invitation(wave=wave, contact=contact, status="sent", sent_at=timezone.now())
                for contact in Contact.objects.filter(email__endswith=suffix)
            ]
        )
        tokens = tokens_issue(invitations=list(Invitation.objects.filter(wave=wave)))
        self.used_tokens.update(tokens.values())
        return tokens

    def answers_for(self, tokens: list[str]) -> list[tuple[str, int, str]]:
        return [
            (token, self.random.randint(0, 10), f"Bench answer {n}: support was slow.")
            for n, token in enumerate(tokens)
        ]

    def invitation_ids(self, tokens: list[str]) -> dict[str, int]:
        from surveys.services import invitation_for_token

        return {token: db_retry(lambda t=token: invitation_for_token(t).pk) for token in tokens}

    # -- checks shared by a and b --

    def check_answers(self, scenario: str, storm: AnswerStorm, ids: dict[str, int]) -> None:
        """After the retries: each invitation one response, the acknowledged score stored,
        each detractor a follow-up, each response one response.created event, delivered."""
        from followups.models import FollowUp
        from surveys.models import Response

        R = self.report  # noqa: N806
        missing = storm.unacknowledged()
        R.check(
            scenario,
            "every answer acknowledged after retrying",
            not missing,
            f"{len(storm.acknowledged):,} of {len(storm.answers):,}",
        )
        rows = db_retry(
            lambda: {
                r.invitation_id: r
                for r in Response.objects.filter(invitation_id__in=ids.values()).select_related(
                    "followup"
                )
            }
        )
        wrong = [
            t
            for t, score in storm.acknowledged.items()
            if getattr(rows.get(ids[t]), "score", None) != score
        ]
        R.check(
            scenario,
            "each invitation has one response with the acknowledged score",
            len(rows) == len(ids) and not wrong,
            f"{len(rows):,} responses for {len(ids):,} invitations, "
            f"{len(wrong)} with another score",
        )

        def detractors_without_followup():
            found = Response.objects.filter(
                invitation_id__in=ids.values(), category="detractor", followup__isnull=True
            )
            return list(found.values_list("pk", flat=True))

        detractor_ids = db_retry(
            lambda: set(
                Response.objects.filter(
                    invitation_id__in=ids.values(), category="detractor"
                ).values_list("pk", flat=True)
            )
        )
        try:
            wait_until(
                lambda: not db_retry(detractors_without_followup),
                timeout=self.args.timeout,
                what="every detractor's follow-up",
                interval=1,
            )
        except TimeoutError:
            pass
        lacking = db_retry(detractors_without_followup)
        followups = db_retry(lambda: FollowUp.objects.filter(response_id__in=detractor_ids).count())
        R.check(
            scenario,
            "every detractor has a follow-up",
            not lacking and followups == len(detractor_ids),
            f"{len(detractor_ids):,} detractors, {followups:,} follow-ups, {len(lacking)} without",
        )
        response_ids = {r.pk for r in rows.values()}

        def events_received():
            got = self.receiver.events_by_subject("/fast", "response.created")
            return {pk: got.get(pk, set()) for pk in response_ids}

        try:
            wait_until(
                lambda: all(events_received().values()),
                timeout=self.args.timeout,
                what="every response.created webhook",
                interval=1,
            )
        except TimeoutError:
            pass
        events = events_received()
        none = [pk for pk, ids_ in events.items() if not ids_]
        several = [pk for pk, ids_ in events.items() if len(ids_) > 1]
        R.check(
            scenario,
            "one response.created event per response, delivered",
            not none and not several,
            f"{len(response_ids) - len(none):,} of {len(response_ids):,} delivered, "
            f"{len(several)} responses with more than one event id",
        )
        counts = self.receiver.by_event_id("/fast", "response.created")
        again = sum(n - 1 for eid, n in counts.items() if n > 1)
        R.note(
            scenario,
            "response.created deliveries received twice (same event id)",
            f"{again} (at least once: receivers de-duplicate by event id)",
        )

    # -- scenario a --

    def scenario_a(self) -> None:
        from surveys.services import invitations_create

        args, R = self.args, self.report  # noqa: N806
        print()
        say(f"a) Redis killed mid-wave: a wave of {args.wave:,}, Redis away {args.redis_down} s")
        wave, suffix = self.new_wave("a", args.wave)
        created = invitations_create(wave=wave)
        say(f"   {created:,} invitations created and queued on Redis")
        wait_until(
            lambda: self.sink.count >= created // 4,
            timeout=args.timeout,
            what="a quarter of the wave",
            interval=0.05,
        )
        before_beat = self.beat.totals.copy()
        tokens = self.tokens_from(suffix, args.redis_answers)
        ids = self.invitation_ids(tokens)
        storm = AnswerStorm(self.web.url, self.answers_for(tokens), clients=4)
        storm.prepare()
        delivered = len(self.sink.recipients(suffix))
        self.redis.crash()
        down_at = time.monotonic()
        say(
            f"   Redis killed (SIGKILL, no persistence) after {delivered:,} emails; "
            f"{len(tokens)} partners answer meanwhile"
        )
        answering = threading.Thread(target=storm.first_pass, args=(args.rate,))
        answering.start()
        time.sleep(args.redis_down)
        self.redis.start()
        up_at = time.monotonic()
        states = self.invitation_states(wave)
        say(
            f"   Redis started again, empty, after {up_at - down_at:.1f} s; invitations: "
            f"{_fmt(states)} (the queued ones' tasks were lost with Redis)"
        )
        answering.join()
        storm.retry_failed(timeout=args.timeout)
        self.wait_for_wave(wave, suffix, created)
        say(f"   beat's sweeps since the fault: {self.beat.since(before_beat)}")
        self.check_wave("a", wave, suffix, created)
        swept = self.beat.totals - before_beat
        R.note(
            "a",
            "invitations whose task Redis lost",
            f"{states.get('queued', 0):,}; the sweep re-enqueued "
            f"{swept['invitations_enqueue_due']:,} rows (with the rows still waiting in the "
            f"queue past --stale: their second task claims nothing)",
        )
        R.check(
            "a",
            "the worker survived the Redis restart",
            self.worker.alive,
            f"worker pid {self.worker.process.pid}",
        )
        during = storm.kinds("POST", down_at, up_at)
        R.note("a", "answers posted while Redis was down", _fmt(during))
        bad = storm.bad()
        R.check(
            "a",
            "no 5xx page while Redis was down (answers)",
            not bad,
            f"{len(bad)} bad: {_fmt(collections.Counter(o.kind for o in bad))}"
            + (f"; e.g. {bad[0].excerpt[:120]!r}" if bad else ""),
        )
        self.check_answers("a", storm, ids)

    # -- scenario b --

    def scenario_b(self) -> None:
        from surveys.models import Response

        args, R = self.args, self.report  # noqa: N806
        print()
        say(
            f"b) PostgreSQL {args.pg_stop_mode} stop for {args.pg_down} s while {args.answers} "
            f"answers arrive ({args.clients} browsers, {args.rate:.0f} answers/s)"
        )
        tokens = self.tokens_from("@a.partners.example", args.answers)
        if len(tokens) < args.answers:
            say(f"   {len(tokens)} unused links in wave a's emails; the rest from a new wave")
            tokens += list(self.links("b", args.answers - len(tokens)).values())
        ids = self.invitation_ids(tokens)
        storm = AnswerStorm(self.web.url, self.answers_for(tokens), clients=args.clients)
        storm.prepare()
        window = {}

        def outage():
            wait_until(
                lambda: len(storm.outcomes) >= 0.6 * len(tokens),  # a GET and a POST each
                timeout=args.timeout,
                what="30% of the answers",
                interval=0.05,
            )
            window["down"] = time.monotonic()
            self.pg.stop(args.pg_stop_mode)
            time.sleep(args.pg_down)
            self.pg.start()
            window["up"] = time.monotonic()

        fault = threading.Thread(target=outage)
        fault.start()
        storm.first_pass(args.rate)
        fault.join()
        say(
            f"   PostgreSQL was away {window['up'] - window['down']:.1f} s (stop, "
            f"{args.pg_down} s, start with recovery)"
        )
        first = storm.kinds("POST")
        say(f"   first pass: POST {_fmt(first)}; GET {_fmt(storm.kinds('GET'))}")
        # Answers the page called "not saved": were any stored after all (a commit whose
        # acknowledgement the outage swallowed)?
        refused = {o.token for o in storm.outcomes if o.method == "POST"} - set(storm.acknowledged)
        stored_anyway = db_retry(
            lambda: Response.objects.filter(invitation_id__in=[ids[t] for t in refused]).count()
        )
        acknowledged_first = dict(storm.acknowledged)
        lost = db_retry(
            lambda: [
                t
                for t, score in acknowledged_first.items()
                if not Response.objects.filter(invitation_id=ids[t], score=score).exists()
            ]
        )
        storm.retry_failed(timeout=args.timeout)
        say(f"   after retrying: POST {_fmt(storm.kinds('POST'))}")
        R.check(
            "b",
            "every acknowledged answer (redirect to thanks) survived the restart",
            not lost,
            f"{len(acknowledged_first):,} acknowledged in the first pass, {len(lost)} lost",
        )
        during = storm.kinds("POST", window["down"], window["up"] + 1)
        R.note("b", "answers posted during the outage (and 1 s after)", _fmt(during))
        R.check(
            "b",
            "refused answers got the retry page (503, not saved, try again)",
            first.get("retry page (503)", 0) == len(refused) and bool(refused),
            f"{len(refused)} refused, {first.get('retry page (503)', 0)} with the retry page"
            + (
                f"; page: {storm.samples('POST', 'retry page (503)', 1)[0][:110]!r}"
                if refused
                else ""
            ),
        )
        bad = storm.bad()
        R.check(
            "b",
            "never a 500 (or any other error) on the form",
            not bad,
            f"{len(bad)} bad: {_fmt(collections.Counter(f'{o.method} {o.kind}' for o in bad))}"
            + (f"; e.g. {bad[0].excerpt[:120]!r}" if bad else ""),
        )
        R.note(
            "b",
            "refused answers stored after all",
            f"{stored_anyway} of {len(refused)} (their commit happened; the retry revised "
            "them to the same answer)",
        )
        gets = storm.kinds("GET")
        R.note("b", "form pages (GET) during the run", _fmt(gets))
        codes = collections.Counter(o.status for o in storm.outcomes if o.kind in SAVED)
        R.note(
            "b",
            "status code of a saved answer",
            _fmt({f"HTTP {c}": n for c, n in codes.items()}) + " (redirect to the thank-you page)",
        )
        self.check_answers("b", storm, ids)
        self.b_tokens = ids

    # -- scenario c --

    def scenario_c(self) -> None:
        from surveys.models import Invitation
        from surveys.services import invitations_create

        args, R = self.args, self.report  # noqa: N806
        print()
        say(f"c) SMTP away for {args.smtp_down} s mid-wave: a wave of {args.smtp_wave:,}")
        wave, suffix = self.new_wave("c", args.smtp_wave)
        before_beat = self.beat.totals.copy()
        created = invitations_create(wave=wave)
        wait_until(
            lambda: len(self.sink.recipients(suffix)) >= created // 3,
            timeout=args.timeout,
            what="a third of the wave",
            interval=0.05,
        )
        self.sink.stop()
        delivered = len(self.sink.recipients(suffix))
        say(f"   SMTP server stopped after {delivered:,} emails")
        time.sleep(args.smtp_down / 2)
        states = self.invitation_states(wave)
        say(f"   meanwhile: {_fmt(states)}")
        time.sleep(args.smtp_down / 2)
        self.sink.start()
        say("   SMTP server back on the same port")
        self.wait_for_wave(wave, suffix, created)
        say(f"   beat's sweeps since: {self.beat.since(before_beat)}")
        self.check_wave("c", wave, suffix, created)
        retried = db_retry(lambda: Invitation.objects.filter(wave=wave, attempts__gt=1).count())
        R.note("c", "invitations sent on a second or later attempt", f"{retried:,}")

    # -- scenario d --

    def scenario_d(self) -> None:
        from django.db.models import Count
        from django.utils import timezone

        from followups.models import Escalation, EscalationRule, FollowUp, StaffEmail
        from followups.tasks import escalate_overdue_followups
        from webhooks.models import Delivery

        args, R = self.args, self.report  # noqa: N806
        print()
        rules = list(EscalationRule.objects.filter(is_active=True, notify_managers=True))
        say(
            f"d) worker SIGKILLed during escalation and webhook work: {args.escalate} overdue "
            f"follow-ups x {len(rules)} rules, {args.managers} managers, a receiver taking "
            f"{args.webhook_delay} s per delivery"
        )
        open_ones = FollowUp.objects.filter(status="open", first_contacted_at__isnull=True)
        if open_ones.count() < args.escalate:  # scenario b did not run: answer as detractors
            from surveys.services import response_submit

            for invitation_id in self.links("d", args.escalate - open_ones.count()):
                response_submit(invitation_id=invitation_id, score=2, comment="Too slow.")
        chosen = list(open_ones.order_by("pk").values_list("pk", flat=True)[: args.escalate])
        long_ago = timezone.now() - dt.timedelta(days=30)
        FollowUp.objects.filter(pk__in=chosen).update(
            due_at=long_ago, resolution_due_at=long_ago + dt.timedelta(days=1)
        )
        expected = len(chosen) * len(rules)
        # Past every rule at once, a follow-up is escalated (emailed, webhook) by the rule with
        # the most hours of each measure; the lesser ones are recorded as passed with it.
        fired = [
            max((r for r in rules if r.measure == m), key=lambda r: (r.hours_overdue, -r.position))
            for m in sorted({r.measure for r in rules})
        ]
        notified = len(chosen) * len(fired)
        say(
            f"   {len(chosen)} follow-ups made overdue: {expected} escalations due, "
            f"{notified} of them notified (by {', '.join(r.name for r in fired)})"
        )

        def state():
            return {
                "escalations": Escalation.objects.filter(followup_id__in=chosen).count(),
                "emails": dict(
                    StaffEmail.objects.filter(kind="escalated")
                    .values_list("status")
                    .annotate(n=Count("pk"))
                    .order_by()
                ),
                "webhooks": dict(
                    Delivery.objects.filter(event="followup.overdue")
                    .values_list("status")
                    .annotate(n=Count("pk"))
                    .order_by()
                ),
                "received": sum(self.receiver.by_event_id("/slow", "followup.overdue").values()),
            }

        escalate_overdue_followups.delay()  # beat's task, run by the worker
        wait_until(
            lambda: Escalation.objects.filter(followup_id__in=chosen).count() >= expected * 0.4,
            timeout=args.timeout,
            what="escalations to start",
            interval=0.02,
        )
        sink_before = collections.Counter(self._escalation_keys())
        self.worker.kill()
        at_kill = state()
        sending_at_kill = set(
            StaffEmail.objects.filter(kind="escalated", status="sending").values_list(
                "followup_id", "event__note", "recipient__email"
            )
        )
        say(f"   worker SIGKILLed (process group) with {at_kill}")
        self.start_worker()
        say("   a new worker started; beat's escalation sweep resumes")
        before_beat = self.beat.totals.copy()
        self.beat.escalate = True

        def finished():
            now = state()
            return (
                now["escalations"] == expected
                and now["emails"] == {"sent": notified * args.managers}
                and now["webhooks"] == {"delivered": notified}
            )

        try:
            wait_until(finished, timeout=args.timeout, what="escalation work", interval=1)
        except TimeoutError as exc:
            say(f"   {exc}: {state()}")
        time.sleep(3)
        final = state()
        say(f"   beat's sweeps since the kill: {self.beat.since(before_beat)}")
        R.check(
            "d",
            "every escalation rule fired once per follow-up",
            final["escalations"] == expected,
            f"{final['escalations']} escalations, {expected} expected",
        )
        R.check(
            "d",
            "every escalation email marked sent",
            final["emails"] == {"sent": notified * args.managers},
            f"{_fmt(final['emails'])}, {notified * args.managers:,} expected",
        )
        keys = collections.Counter(self._escalation_keys())
        wanted = {
            (pk, rule.name, f"manager{n}@managers.example")
            for pk in chosen
            for rule in fired
            for n in range(args.managers)
        }
        missing = wanted - set(keys)
        twice = {k: n for k, n in keys.items() if n > 1}
        # A kill between the server's "250 accepted" and the worker's "sent" UPDATE leaves the
        # row "sending" with the email delivered: the sweep sends it again (at least once).
        in_window = {
            (pk, rule, email)
            for pk, rule, email in twice
            if sink_before.get((pk, rule, email))
            and any(
                pk == f and email == e and note.startswith(f"{rule}:")
                for f, note, e in sending_at_kill
            )
        }
        R.check(
            "d",
            "each manager got each escalation email",
            not missing,
            f"{len(wanted) - len(missing):,} of {len(wanted):,} (follow-up, rule, manager)",
        )
        R.check(
            "d",
            "no escalation email sent twice (outside the kill's accept-to-UPDATE window)",
            not (set(twice) - in_window),
            f"{len(twice)} sent twice, {len(in_window)} of them killed between the server's "
            "250 and the sent UPDATE",
        )
        if in_window:
            R.note("d", "escalation emails sent twice by the kill window", f"{sorted(in_window)}")
        per_followup = self.receiver.events_by_subject("/slow", "followup.overdue")
        wrong = [pk for pk in chosen if len(per_followup.get(pk, ())) != len(fired)]
        R.check(
            "d",
            "every followup.overdue event delivered (distinct event ids)",
            not wrong and final["webhooks"] == {"delivered": notified},
            f"{sum(len(per_followup.get(pk, ())) for pk in chosen)} distinct event ids for "
            f"{notified} notified escalations; rows {_fmt(final['webhooks'])}",
        )
        counts = self.receiver.by_event_id("/slow", "followup.overdue")
        again = {eid: n for eid, n in counts.items() if n > 1}
        R.note(
            "d",
            "followup.overdue deliveries received more than once",
            f"{sum(n - 1 for n in again.values())} extra deliveries of {len(again)} events "
            "(posted when the worker died, before it recorded the answer)",
        )
        R.note(
            "d",
            "receiver connections broken by the kill",
            f"{self.receiver.broken} (a delivery in flight when the worker died)",
        )
        R.check(
            "d",
            "webhook event id header matches the body",
            self.receiver.mismatched == 0,
            f"{self.receiver.mismatched} mismatched",
        )

    def _escalation_keys(self):
        """(follow-up id, rule name, manager) of each escalation email at the sink."""
        from followups.models import EscalationRule

        names = list(EscalationRule.objects.values_list("name", flat=True))
        for recipient, subject, body in self.sink.parsed("@managers.example"):
            found = re.search(r"follow-up #(\d+)", subject)
            rule = next((n for n in names if f"escalated: {n}:" in body), None)
            if found:
                yield int(found.group(1)), rule, recipient

    # -- the whole database --

    def final_checks(self) -> None:
        from django.db.models import Q

        from followups.models import StaffEmail
        from surveys.models import Invitation, Response
        from webhooks.models import Delivery

        R = self.report  # noqa: N806
        print()
        say("z) after recovery: the whole database")
        time.sleep(self.args.beat_interval)
        lacking = Response.objects.filter(category="detractor", followup__isnull=True).count()
        R.check("all", "no detractor without a follow-up", lacking == 0, f"{lacking}")
        unsent = Invitation.objects.filter(wave__status="open").exclude(status="sent").count()
        R.check("all", "no invitation of an open wave unsent", unsent == 0, f"{unsent}")
        if any(f.name == "settle_state" for f in Response._meta.get_fields()):
            unsettled = Response.objects.exclude(settle_state="done").count()
            R.check("all", "every answer settled", unsettled == 0, f"{unsettled} not settled")
        emails = StaffEmail.objects.filter(~Q(status="sent")).count()
        R.check("all", "no staff email left unsent", emails == 0, f"{emails}")
        deliveries = Delivery.objects.filter(~Q(status="delivered")).count()
        R.check("all", "no webhook delivery left undelivered", deliveries == 0, f"{deliveries}")
        R.check(
            "all",
            "gunicorn still serving (same master)",
            self.web.alive,
            f"pid {self.web.process.pid}",
        )
        # A sweep may fail while PostgreSQL or Redis is away; anything else is a bug.
        outage = ("OperationalError", "InterfaceError", "ConnectionError")
        other = {k: n for k, n in self.beat.errors.items() if not k.endswith(outage)}
        R.note(
            "all",
            "beat sweep failures while a server was away",
            _fmt({k: n for k, n in self.beat.errors.items() if k not in other}),
        )
        R.check("all", "no other beat sweep failure", not other, _fmt(other))
        for key in other:
            print(f"first traceback of {key}:\n{self.beat.first_traceback[key]}")
        R.note("all", "worker log: errors", _log_errors(self.root / "worker.log"))
        R.note("all", "gunicorn log: errors", _log_errors(self.web.error_log))


def _fmt(counts) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(dict(counts).items())) or "none"


def _log_errors(path: Path) -> str:
    """The exception names of the tracebacks in a log, counted."""
    if not path.exists():
        return "no log"
    text = path.read_text(errors="replace")
    names = re.findall(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit|Interrupt)):", text, re.M)
    return f"{text.count('Traceback')} tracebacks" + (
        f" ({_fmt(collections.Counter(names))})" if names else ""
    )


def main() -> int:
    args = parse_args()
    if not args.scenarios or set(args.scenarios) - set("abcd"):
        sys.exit("--scenarios takes letters among a, b, c and d, e.g. abcd or bd.")
    for port in (args.pg_port, args.redis_port):
        if not port_is_free(port):
            sys.exit(f"Port {port} is in use: choose another (--pg-port, --redis-port).")
    root = Path(tempfile.mkdtemp(prefix="nps-faults-"))
    root.chmod(0o755)
    pg, redis = PrivatePostgres(root, args.pg_port), PrivateRedis(root, args.redis_port)
    sink = SmtpSink(free_port())
    receiver = WebhookReceiver(free_port(), delays={"/slow": args.webhook_delay})
    web_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg.url(DATABASE),
        "CELERY_BROKER_URL": redis.url(0),
        "CACHE_URL": redis.url(1),  # the rate-limit counters, as in production
        "NPS_VAR_DIR": str(root / "var"),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(sink.port),
        "EMAIL_TIMEOUT": "10",
        "NPS_SITE_URL": f"http://127.0.0.1:{web_port}",
        "NPS_SEND_BATCH_SIZE": str(args.batch),
        "NPS_SEND_RETRY_BASE_SECONDS": "1",
        "NPS_SEND_RETRY_MAX_SECONDS": "8",
        "NPS_SEND_MAX_ATTEMPTS": "10",
        "NPS_SEND_STALE_SECONDS": str(args.stale),
        # One address plays every partner: the limits stay on (in Redis) but out of the way.
        "NPS_LINK_READ_RATE": "1000000/m",
        "NPS_LINK_WRITE_RATE": "1000000/m",
    }
    os.environ.update({k: v for k, v in env.items() if k not in ("CACHE_URL",)})
    print(f"folder {root}; PostgreSQL :{args.pg_port}, Redis :{args.redis_port}, SMTP :{sink.port}")
    bench = None
    started = time.monotonic()
    try:
        pg.init()
        pg.start()
        pg.create_database(DATABASE)
        redis.start()
        sink.start()
        receiver.start()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        say("private PostgreSQL and Redis up, database migrated")
        bench = Bench(
            args, root=root, pg=pg, redis=redis, sink=sink, receiver=receiver,
            web_port=web_port, env=env,
        )  # fmt: skip
        bench.setup()
        say(f"gunicorn (2 sync workers) on :{web_port}, worker and beat running")
        for name in args.scenarios:
            scenario = getattr(bench, f"scenario_{name}")
            try:
                scenario()
            except Exception:  # noqa: BLE001 - report and go on with the next scenario
                traceback.print_exc()
                bench.report.check(name, "scenario ran to the end", False)
        bench.final_checks()
    finally:
        if bench is not None:
            bench.beat.stop()
            if bench.worker is not None:
                bench.worker.stop()
            if bench.web is not None:
                bench.web.stop()
        receiver.stop()
        sink.stop()
        redis.shutdown()
        pg.shutdown()
    elapsed = time.monotonic() - started
    print()
    if bench is None:
        return 1
    print(f"Summary ({elapsed:.0f} s):")
    print(bench.report.table())
    failed = bench.report.failed
    print()
    print(f"{len(failed)} of {len(bench.report.rows)} checks failed." if failed else "All passed.")
    if failed or args.keep:
        print(f"Logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
