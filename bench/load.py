"""Bench: partners opening and submitting the survey form under load, against two ceilings.

Usage (PostgreSQL and Redis on loopback; the database in DATABASE_URL is DROPPED and re-created,
so its name must start with ``nps_bench``; wrk from Debian's ``wrk`` package)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nps_bench_load \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/11 \\
    .venv/bin/python bench/load.py --duration 20

What it does, in one run, on one gunicorn (2 sync workers, the production settings: DEBUG off,
the rate limiter on with its counters in Redis, rates raised so one loopback client is not
limited, CSRF checked); a Celery worker and beat (whose settle tick, every 5 s, gives each new
answer its follow-up) run during the mixed run, or with ``--settle-during all`` during every run:

1. creates and migrates the database; loads one program with an open wave, ``--invitations``
   contacts with survey links, and a CS manager;
2. measures with wrk (``--connections`` connections, ``--duration`` seconds each, after a
   warm-up), one after the other:
   - ceiling "tiny": GET of a bench-only view that returns two bytes (``nps_project/bench_views``);
   - the form's GET (a random partner's link);
   - ceiling "one INSERT": POST (with a CSRF token) of a bench-only view doing one INSERT;
   - the form's POST (a random partner's link, a random score and a comment);
   - a mixed run: partners opening and submitting (one GET per POST) while staff load the
     dashboard and the follow-up queue (a second wrk with the manager's session);
3. prints requests per second, p50 and p99 latency and errors (non-2xx/3xx and socket errors)
   for each, the ratios to the ceilings against the targets (POST >= 50% of the INSERT ceiling,
   GET >= 25% of the tiny view, p99 within 3x of the ceiling's p99, zero errors), the SQL of
   one form POST, and checks afterwards that every answer was settled by the worker and that
   every detractor has its follow-up.

Never asserts times; exits 1 if a run had errors or an answer was left without its follow-up.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_project.settings")
VENV_BIN = Path(sys.executable).parent
CSRF = "BenchCsrfSecret0123456789abcdefX"  # 32 characters, as Django's CSRF secret
PASSWORD = "bench-load-password-4711"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--staff-connections", type=int, default=2)
    parser.add_argument("--invitations", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=600,
        help="seconds to wait after the runs for the worker to settle every answer",
    )
    parser.add_argument(
        "--settle-during",
        choices=["mixed", "all"],
        default="mixed",
        help="when the Celery worker and beat run: during the mixed run only (the form's own "
        "runs measure the web tier; the answers are settled then), or during every run "
        "(competing with gunicorn for the same cores)",
    )
    return parser.parse_args()


# --- Set-up ----------------------------------------------------------------------------------


def recreate_database() -> str:
    import psycopg

    url = urlparse(os.environ.get("DATABASE_URL", ""))
    name = url.path.lstrip("/")
    if url.scheme not in ("postgres", "postgresql", "pgsql") or not name.startswith("nps_bench"):
        sys.exit("Set DATABASE_URL=postgres://.../nps_bench_<name>: the bench drops that database.")
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("The bench runs against a loopback database only.")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        sys.exit("Set CELERY_BROKER_URL=redis://127.0.0.1:6379/<db>.")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def load(invitations: int) -> list[str]:
    """The data set: one open wave, ``invitations`` contacts with links. Returns the tokens."""
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.utils import timezone

    from nps_project import roles
    from nps_project.bench_views import TABLE
    from surveys.models import Contact, Invitation, Partner, PartnerType, Program, Tier, Wave
    from surveys.services import tokens_issue

    users = get_user_model()
    manager = users.objects.create_user("bench-manager", "manager@example.com", PASSWORD)
    manager.groups.add(Group.objects.get(name=roles.CS_MANAGER))
    agents = [users.objects.create_user(f"bench-agent{i}", f"a{i}@example.com") for i in range(5)]
    Group.objects.get(name=roles.CS_STAFF).user_set.add(*agents)
    tiers = list(Tier.objects.all())
    types = list(PartnerType.objects.all())
    partners = Partner.objects.bulk_create(
        Partner(
            name=f"Bench partner {i}",
            tier=tiers[i % len(tiers)],
            partner_type=types[i % len(types)],
            region=["EMEA", "NA", "APAC"][i % 3],
            account_owner=agents[i % len(agents)],
        )
        for i in range(max(1, invitations // 10))
    )
    contacts = Contact.objects.bulk_create(
        Contact(
            partner=partners[i % len(partners)],
            name=f"Contact {i}",
            email=f"contact{i}@partner{i % len(partners)}.example.com",
            language=["en", "de", "fr", "es"][i % 4],
        )
        for i in range(invitations)
    )
    program = Program.objects.create(name="Bench program", starts_on=dt.date(2026, 1, 1))
    now = timezone.now()
    wave = Wave.objects.create(
        program=program,
        period_start=now.date(),
        label="Bench wave",
        status=Wave.Status.OPEN,
        opens_at=now - dt.timedelta(hours=1),
        closes_at=now + dt.timedelta(days=14),
    )
    rows = Invitation.objects.bulk_create(
        Invitation(wave=wave, contact=c, status=Invitation.Status.SENT, sent_at=now)
        for c in contacts
    )
    tokens = list(tokens_issue(invitations=rows).values())
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, n integer NOT NULL, "
            "note text NOT NULL, created_at timestamptz NOT NULL)"
        )
        cursor.execute("VACUUM ANALYZE")
    return tokens


def write_path_queries(token: str) -> list[str]:
    """The SQL of one form POST, through Django's test client (the same view and middleware)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    client = Client(HTTP_HOST="127.0.0.1")
    url = reverse("surveys:respond", args=[token])
    with CaptureQueriesContext(connection) as captured:
        answer = client.post(url, {"score": "3", "comment": "Counting queries"})
    assert answer.status_code == 302, answer.status_code
    return [q["sql"] for q in captured.captured_queries]


# --- Processes -------------------------------------------------------------------------------


def server_env(args) -> dict:
    broker = os.environ["CELERY_BROKER_URL"]
    return {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "CACHE_URL": os.environ.get("CACHE_URL", broker),
        "NPS_LINK_READ_RATE": "100000000/m",  # the limiter runs, one client is not limited
        "NPS_LINK_WRITE_RATE": "100000000/m",
        "NPS_BENCH_VIEWS": "true",
        "NPS_SITE_URL": f"http://127.0.0.1:{args.port}",
        "LOG_LEVEL": "WARNING",
    }


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_ready(port: int, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/tiny/", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit("gunicorn did not answer within a minute (see its log)")


def staff_session(port: int) -> str:
    """Log the manager in through the login page; returns the session cookie."""
    import http.cookiejar
    import urllib.parse
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    page = opener.open(base + "/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(
        {"username": "bench-manager", "password": PASSWORD, "csrfmiddlewaretoken": token}
    ).encode()
    opener.open(urllib.request.Request(base + "/login/", data=data, headers={"Referer": base}))
    session = {c.name: c.value for c in jar}.get("sessionid")
    if not session:
        sys.exit("The manager could not log in.")
    return session


# --- wrk -------------------------------------------------------------------------------------

LUA_COMMON = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local counter = 0
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end
local csrf = "%(csrf)s"
local function form_get()
  return wrk.format("GET", "/s/" .. tokens[math.random(#tokens)] .. "/")
end
local function form_post()
  local score = math.random(0, 10)
  local body = "csrfmiddlewaretoken=" .. csrf .. "&score=" .. score
    .. "&comment=Bench+answer+with+a+score+of+" .. score
  return wrk.format("POST", "/s/" .. tokens[math.random(#tokens)] .. "/", {
    ["Cookie"] = "csrftoken=" .. csrf,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end
local function insert_post()
  local body = "csrfmiddlewaretoken=" .. csrf .. "&n=" .. math.random(0, 10)
    .. "&note=Bench+answer"
  return wrk.format("POST", "/bench/insert/", {
    ["Cookie"] = "csrftoken=" .. csrf,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end
"""

SCENARIOS = {
    "ceiling-tiny": 'request = function() return wrk.format("GET", "/bench/tiny/") end',
    "form-get": "request = form_get",
    "ceiling-insert": "request = insert_post",
    "form-post": "request = form_post",
    "mixed-partners": """
request = function()
  counter = counter + 1
  if counter %% 2 == 1 then return form_get() else return form_post() end
end""",
    "mixed-staff": """
local pages = {"/reports/", "/"}
request = function()
  counter = counter + 1
  return wrk.format("GET", pages[counter %% 2 + 1], {["Cookie"] = "sessionid=%(session)s"})
end""",
}


def lua(folder: Path, name: str, **values) -> Path:
    path = folder / f"{name}.lua"
    path.write_text((LUA_COMMON + SCENARIOS[name]) % values)
    return path


def wrk(script: Path, *, port: int, seconds: int, connections: int) -> subprocess.Popen:
    threads = min(2, connections)
    return subprocess.Popen(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        return float(match.group(1)) * UNITS[match.group(2)] if match else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": (int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(int(n) for n in socket.groups()) if socket else 0),
        "raw": output,
    }


def measure(script: Path, args, *, connections: int | None = None) -> dict:
    connections = connections or args.connections
    if args.warmup:
        wrk(script, port=args.port, seconds=args.warmup, connections=connections).communicate()
    output, _ = wrk(
        script, port=args.port, seconds=args.duration, connections=connections
    ).communicate()
    return parse_wrk(output)


# --- The run ---------------------------------------------------------------------------------


def settle_check(timeout: float) -> dict:
    """Wait for the worker to settle every answer; then the detractors' follow-ups."""
    from surveys.models import Response

    deadline = time.monotonic() + timeout
    pending = Response.objects.exclude(settle_state=Response.SettleState.DONE)
    started, at_start = time.monotonic(), pending.count()
    while pending.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    detractors = Response.objects.filter(category=Response.Category.DETRACTOR)
    drained = time.monotonic() - started
    unsettled = pending.count()
    return {
        "responses": Response.objects.count(),
        "unsettled": unsettled,
        "pending_at_start": at_start,
        "settled_rate": (at_start - unsettled) / drained if drained else 0.0,
        "detractors": detractors.count(),
        "detractors_without_followup": detractors.filter(followup__isnull=True).count(),
        "drain_seconds": drained,
    }


def row(name: str, result: dict) -> str:
    return (
        f"  {name:<26} {result['rps']:>9.1f} req/s   p50 {result['p50']:>8.2f} ms   "
        f"p99 {result['p99']:>8.2f} ms   errors {result['errors']:>5}   "
        f"({result['requests']} requests)"
    )


def start_celery(env: dict, folder: Path) -> list[subprocess.Popen]:
    """A Celery worker (two pool processes, as in the Procfile) and beat, whose settle tick gives
    the answers their follow-ups every 5 s."""
    beat = start(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "nps_project",
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(folder / "celerybeat-schedule"),
        ],
        env,
        folder / "beat.log",
    )
    worker = start(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "nps_project",
            "worker",
            "--concurrency",
            "2",  # as in the Procfile
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env,
        folder / "worker.log",
    )
    return [beat, worker]


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")
    name = recreate_database()
    for command in (["migrate"], ["collectstatic"]):
        subprocess.run(
            [sys.executable, "manage.py", *command, "--no-input", "-v0"], cwd=ROOT, check=True
        )
    import django

    django.setup()
    from django.conf import settings

    started = time.perf_counter()
    tokens = load(args.invitations)
    took = time.perf_counter() - started
    print(f"Loaded {len(tokens):,} invitations into {name} in {took:.1f} s")
    redis_cli = ["redis-cli", "-u", os.environ["CELERY_BROKER_URL"]]
    subprocess.run([*redis_cli, "FLUSHDB"], check=False, capture_output=True)
    queries = write_path_queries(tokens[-1])  # its settling waits in the queue for the worker
    tokens = tokens[:-1]

    folder = Path(tempfile.mkdtemp(prefix="nps-load-"))
    (folder / "tokens.txt").write_text("\n".join(tokens) + "\n")
    env = server_env(args)
    web = start(
        [
            str(VENV_BIN / "gunicorn"),
            "nps_project.wsgi",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            "2",
            "--logger-class",
            "nps_project.gunicorn_logging.RedactingLogger",
        ],
        env,
        folder / "gunicorn.log",
    )
    celery = start_celery(env, folder) if args.settle_during == "all" else []
    results = {}
    try:
        wait_ready(args.port)
        session = staff_session(args.port)
        values = {"tokens": folder / "tokens.txt", "csrf": CSRF, "session": session}
        for scenario in ("ceiling-tiny", "form-get", "ceiling-insert", "form-post"):
            results[scenario] = measure(lua(folder, scenario, **values), args)
            print(row(scenario, results[scenario]), flush=True)
        if not celery:
            celery = start_celery(env, folder)
        partners = lua(folder, "mixed-partners", **values)
        staff = lua(folder, "mixed-staff", **values)
        runs = {
            "mixed-partners": wrk(
                partners, port=args.port, seconds=args.duration, connections=args.connections
            ),
            "mixed-staff": wrk(
                staff, port=args.port, seconds=args.duration, connections=args.staff_connections
            ),
        }
        for scenario, process in runs.items():
            results[scenario] = parse_wrk(process.communicate()[0])
            print(row(scenario, results[scenario]), flush=True)
        settled = settle_check(args.drain_timeout)
    finally:
        stop(web)
        for process in celery:
            stop(process)

    tiny, insert = results["ceiling-tiny"], results["ceiling-insert"]
    get, post = results["form-get"], results["form-post"]
    checks = [
        ("form POST / one-INSERT ceiling (req/s)", post["rps"] / insert["rps"], ">=", 0.50),
        ("form GET / tiny-view ceiling (req/s)", get["rps"] / tiny["rps"], ">=", 0.25),
        ("form POST p99 / INSERT ceiling p99", post["p99"] / insert["p99"], "<=", 3.0),
        ("form GET p99 / tiny-view ceiling p99", get["p99"] / tiny["p99"], "<=", 3.0),
    ]
    database = settings.DATABASES["default"]
    prepared = "prepare_threshold" in database.get("OPTIONS", {})
    print()
    print(
        f"gunicorn 2 sync workers, {args.connections} connections, {args.duration} s a run, "
        f"database {database['ENGINE'].rsplit('.', 1)[-1]} "
        f"(prepared statements: {prepared}), "
        f"rate-limit cache {env['CACHE_URL']}, broker {env['CELERY_BROKER_URL']}; "
        f"Celery worker and beat during the {args.settle_during} run(s)"
    )
    for label, value, op, target in checks:
        met = value >= target if op == ">=" else value <= target
        shown = f"{value:.0%}" if op == ">=" else f"{value:.2f}x"
        goal = f"{target:.0%}" if op == ">=" else f"{target:.0f}x"
        print(f"  {label:<40} {shown:>7}   target {op} {goal}   {'met' if met else 'NOT MET'}")
    noun = "query" if len(queries) == 1 else "queries"
    print(f"  write path: {len(queries)} {noun} in autocommit (one transaction each):")
    for sql in queries:
        print(f"    {sql[:150]}{'...' if len(sql) > 150 else ''}")
    print(
        f"  after the run: {settled['responses']:,} answers, {settled['unsettled']} unsettled "
        f"after {settled['drain_seconds']:.1f} s of draining ({settled['pending_at_start']:,} "
        f"waiting when the runs ended, settled at {settled['settled_rate']:.0f}/s), "
        f"{settled['detractors']:,} detractors,"
        f" {settled['detractors_without_followup']} without a follow-up"
    )
    errors = sum(r["errors"] for r in results.values())
    print(f"  errors in all runs: {errors}; logs in {folder}")
    failed = errors or settled["unsettled"] or settled["detractors_without_followup"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
