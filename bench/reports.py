"""Bench: the reports on a million responses, against the raw SQL that answers the same question.

Usage (PostgreSQL only; the database named in DATABASE_URL is DROPPED and re-created, so its
name must start with ``nps_bench``)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nps_bench_rep \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \\
    .venv/bin/python bench/reports.py --size 1000000

What it does, in one run:

1. creates and migrates the database, then bulk-loads ``--partners`` partners, enough contacts,
   ``--waves`` quarterly waves and ``--size`` invitations and responses, each with one
   server-side ``INSERT ... SELECT generate_series(...)`` (no row crosses the wire; faster
   than COPY from Python), then ``VACUUM ANALYZE``;
2. times (median of ``--runs`` runs after one warm-up) each report as the product computes it
   (the ``scoring.selectors`` functions the dashboard calls, and ``GET /api/v1/nps/`` through
   Django's test client) and, in the same run, the raw SQL ceiling (``count(*) FILTER (...)``
   grouped the same way) on the same tables;
3. prints the figures, the ratios product / ceiling (target: at most 2) and the scans of the
   plans (``EXPLAIN ANALYZE``), including the filtered report (one tier, one quarter), whose raw
   query must be an Index Only Scan on ``surveys_resp_prog_tier_time``.

Touches only the loopback database; bounded by ``statement_timeout`` (10 minutes a statement).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_project.settings")

REGIONS = ["EMEA", "NA", "APAC", "LATAM", "DACH"]
OWNERS = 20
CATEGORY_SQL = (
    "CASE WHEN {s} >= 9 THEN 'promoter' WHEN {s} >= 7 THEN 'passive' ELSE 'detractor' END"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="responses to load")
    parser.add_argument("--partners", type=int, default=2_000)
    parser.add_argument("--waves", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (median)")
    return parser.parse_args()


def recreate_database() -> str:
    """Drop and create the DATABASE_URL database (loopback, name nps_bench*)."""
    import psycopg

    url = urlparse(os.environ.get("DATABASE_URL", ""))
    name = url.path.lstrip("/")
    if url.scheme not in ("postgres", "postgresql", "pgsql") or not name.startswith("nps_bench"):
        sys.exit("Set DATABASE_URL=postgres://.../nps_bench_<name>: the bench drops that database.")
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("The bench runs against a loopback database only.")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def load(args) -> dict:
    """Bulk-load the data set. Returns the ids the timings need."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from nps_project import roles
    from surveys.models import PartnerType, Program, Tier, Wave

    user_model = get_user_model()
    staff = Group.objects.get(name=roles.CS_STAFF)
    owners = user_model.objects.bulk_create(
        [user_model(username=f"owner{i}", email=f"owner{i}@example.com") for i in range(OWNERS)]
    )
    staff.user_set.add(*owners)
    viewer = owners[0]
    tier_ids = list(Tier.objects.order_by("rank").values_list("pk", flat=True))
    type_ids = list(PartnerType.objects.order_by("rank").values_list("pk", flat=True))
    owner_ids = [o.pk for o in owners]

    program = Program.objects.create(name="Bench program", starts_on=dt.date(2023, 1, 1))
    first = dt.datetime(2024, 1, 15, 9, tzinfo=dt.UTC)
    waves = []
    for i in range(args.waves):
        month = first.month - 1 + 3 * i
        opens = first.replace(year=first.year + month // 12, month=month % 12 + 1)
        waves.append(
            Wave.objects.create(
                program=program,
                period_start=opens.date(),
                label=f"Q{(opens.month - 1) // 3 + 1} {opens.year}",
                status=Wave.Status.CLOSED if i < args.waves - 1 else Wave.Status.OPEN,
                opens_at=opens,
                closes_at=opens + dt.timedelta(days=14),
            )
        )
    per_wave = args.size // args.waves
    contacts = per_wave  # every contact is invited to every wave
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SET statement_timeout = '10min'")
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute("SET synchronous_commit = off")
        # Bulk-load practice: drop the secondary indexes of the two big tables, load, and
        # build them again (a build sorts once; inserting keeps nine b-trees up to date row by
        # row). Indexes behind constraints (primary keys, unique) stay.
        cur.execute(
            """SELECT indexname, indexdef FROM pg_indexes
               WHERE tablename IN ('surveys_invitation', 'surveys_response')
                 AND indexname NOT IN (SELECT conname FROM pg_constraint)"""
        )
        secondary = cur.fetchall()
        for index_name, _definition in secondary:
            cur.execute(f'DROP INDEX "{index_name}"')
        cur.execute(
            """
            INSERT INTO surveys_partner (name, tier_id, partner_type_id, region, account_owner_id,
                                         is_active, created_at, updated_at)
            SELECT 'Partner ' || g, (%(tiers)s::bigint[])[1 + g %% 4],
                   (%(types)s::bigint[])[1 + g %% %(ntypes)s], (%(regions)s::text[])[1 + g %% 5],
                   CASE WHEN g %% 10 = 0 THEN NULL
                        ELSE (%(owners)s::int[])[1 + g %% %(nowners)s] END,
                   true, now(), now()
            FROM generate_series(1, %(partners)s) g
            """,
            {
                "tiers": tier_ids,
                "types": type_ids,
                "ntypes": len(type_ids),
                "regions": REGIONS,
                "owners": owner_ids,
                "nowners": len(owner_ids),
                "partners": args.partners,
            },
        )
        cur.execute(
            """
            INSERT INTO surveys_contact (partner_id, name, email, language, is_active, is_key,
                                         bounce_reason, created_at, updated_at)
            SELECT p.first + g %% %(partners)s, 'Contact ' || g, 'c' || g || '@bench.example',
                   'en', true, false, '', now(), now()
            FROM generate_series(1, %(contacts)s) g,
                 (SELECT min(id) AS first FROM surveys_partner) p
            """,
            {"partners": args.partners, "contacts": contacts},
        )
        cur.execute(
            """
            INSERT INTO surveys_invitation (wave_id, contact_id, status, attempts, last_error,
                                            sent_at, reminders_sent, created_at, updated_at)
            SELECT w.id, c.id, 'sent', 1, '', w.opens_at, 0, w.opens_at, w.opens_at
            FROM surveys_wave w CROSS JOIN surveys_contact c
            WHERE w.program_id = %(program)s
            ORDER BY w.opens_at, c.id
            """,
            {"program": program.pk},
        )
        # Scores: a triangular spread that drifts up by one point every other wave, from two
        # hashes of the invitation id, so the figures are the same on every run.
        score = "LEAST(10, abs(hashint8(i.id)) %% 7 + abs(hashint8(i.id + 7919)) %% 4 + x.drift)"
        cur.execute(
            f"""
            INSERT INTO surveys_response (invitation_id, wave_id, program_id, partner_id,
                contact_id, score, category, comment, answers, wants_contact, language, tier,
                partner_type, region, account_owner_id, submitted_at, updated_at, settle_state)
            SELECT i.id, i.wave_id, w.program_id, c.partner_id, c.id, x.score,
                   {CATEGORY_SQL.format(s="x.score")},
                   CASE abs(hashint8(i.id + 13)) %% 8
                        WHEN 0 THEN 'Support takes days to answer our tickets.'
                        WHEN 1 THEN 'Pricing and discounts are hard to follow.'
                        WHEN 2 THEN 'The portal login keeps failing.'
                        WHEN 3 THEN 'Great enablement and training.'
                        ELSE '' END,
                   '{{}}'::jsonb, false, 'en', t.name, pt.name, p.region, p.account_owner_id,
                   w.opens_at + make_interval(secs => abs(hashint8(i.id + 1)) %% (14 * 86400)),
                   now(), 'done'
            FROM surveys_invitation i
            JOIN surveys_wave w ON w.id = i.wave_id
            JOIN surveys_contact c ON c.id = i.contact_id
            JOIN surveys_partner p ON p.id = c.partner_id
            JOIN surveys_tier t ON t.id = p.tier_id
            JOIN surveys_partnertype pt ON pt.id = p.partner_type_id
            CROSS JOIN LATERAL (
                SELECT {score.replace("x.drift", "d.drift")} AS score
                FROM (SELECT (EXTRACT(month FROM w.opens_at)::int / 6) AS drift) d
            ) x
            WHERE w.program_id = %(program)s
            """,
            {"program": program.pk},
        )
        for _index_name, definition in secondary:
            cur.execute(definition)
        cur.execute("SELECT count(*) FROM surveys_response")
        (loaded,) = cur.fetchone()
    load_seconds = time.perf_counter() - started
    connection.close()
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        vacuum_seconds = time.perf_counter() - started
    return {
        "program": program,
        "waves": waves,
        "viewer": viewer,
        "responses": loaded,
        "contacts": contacts,
        "load_seconds": load_seconds,
        "vacuum_seconds": vacuum_seconds,
    }


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up: caches, connection, plan
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def raw(sql: str, params: dict | None = None):
    from django.db import connection

    def run():
        with connection.cursor() as cur:
            cur.execute(sql, params or {})
            return cur.fetchall()

    return run


def plan_scans(sql: str, params=None) -> list[str]:
    """The scan lines of ``EXPLAIN ANALYZE`` for a statement."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        lines = [row[0] for row in cur.fetchall()]
    return [line.strip() for line in lines if "Scan" in line or "Heap Fetches" in line]


def captured_sql(fn) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        fn()
    return [q["sql"] for q in ctx.captured_queries]


def main() -> None:
    args = parse_args()
    name = recreate_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from scoring import selectors
    from scoring.selectors import ReportFilters

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"database {name}: created and migrated in {time.perf_counter() - started:.1f} s")
    data = load(args)
    print(
        f"loaded {data['responses']:,} responses and invitations over {len(data['waves'])} "
        f"waves, {args.partners:,} partners, {data['contacts']:,} contacts in "
        f"{data['load_seconds']:.1f} s (index builds included); "
        f"VACUUM ANALYZE {data['vacuum_seconds']:.1f} s"
    )
    setup_test_environment()  # the test client's host name is allowed
    program, waves = data["program"], data["waves"]
    latest = waves[-1]
    client = Client()
    client.force_login(data["viewer"])
    everything = ReportFilters(program=program.pk)
    opened = latest.opens_at.date()
    quarter_start = dt.date(opened.year, 3 * ((opened.month - 1) // 3) + 1, 1)
    next_month = quarter_start.month + 3
    next_quarter = dt.date(quarter_start.year + (next_month > 12), (next_month - 1) % 12 + 1, 1)
    quarter_end = next_quarter - dt.timedelta(days=1)
    one_tier_one_quarter = ReportFilters(
        program=program.pk,
        tier="Gold",
        submitted_after=quarter_start,
        submitted_before=quarter_end,
    )
    counts = """count(*) FILTER (WHERE category = 'promoter'),
                count(*) FILTER (WHERE category = 'passive'),
                count(*) FILTER (WHERE category = 'detractor')"""
    p = {"program": program.pk, "wave": latest.pk}
    q_params = {
        **p,
        "tier": "Gold",
        "start": dt.datetime.combine(quarter_start, dt.time.min, tzinfo=dt.UTC),
        "end": dt.datetime.combine(quarter_end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC),
    }
    filtered_raw = f"""SELECT {counts} FROM surveys_response
        WHERE program_id = %(program)s AND tier = %(tier)s
          AND submitted_at >= %(start)s AND submitted_at < %(end)s"""
    cases = [
        (
            "dashboard: NPS per wave (waves, counts, invitations sent)",
            lambda: selectors.wave_summaries(filters=everything),
            [
                raw(
                    """SELECT id, label, opens_at FROM surveys_wave WHERE program_id = %(program)s
                       AND status <> 'skipped' ORDER BY opens_at DESC, id DESC""",
                    p,
                ),
                raw(
                    f"SELECT wave_id, {counts} FROM surveys_response "
                    "WHERE program_id = %(program)s GROUP BY wave_id",
                    p,
                ),
                raw(
                    """SELECT i.wave_id, count(*) FROM surveys_invitation i
                       JOIN surveys_wave w ON w.id = i.wave_id
                       WHERE i.status = 'sent' AND w.program_id = %(program)s GROUP BY i.wave_id""",
                    p,
                ),
            ],
        ),
        (
            "dashboard: 0-10 distribution of the latest wave",
            lambda: selectors.score_distribution(wave=latest.pk, filters=everything),
            [
                raw(
                    "SELECT score, count(*) FROM surveys_response WHERE program_id = %(program)s "
                    "AND wave_id = %(wave)s GROUP BY score",
                    p,
                )
            ],
        ),
        (
            "dashboard: segment table by tier",
            lambda: selectors.segment_table(filters=everything, by="tier"),
            [
                raw(
                    f"SELECT tier, {counts} FROM surveys_response WHERE program_id = %(program)s "
                    "GROUP BY tier ORDER BY tier",
                    p,
                )
            ],
        ),
        (
            "dashboard: segment table by account owner",
            lambda: selectors.segment_table(filters=everything, by="account_owner"),
            [
                raw(
                    f"""SELECT r.account_owner_id, u.username, {counts} FROM surveys_response r
                        LEFT JOIN auth_user u ON u.id = r.account_owner_id
                        WHERE r.program_id = %(program)s
                        GROUP BY r.account_owner_id, u.username
                        ORDER BY u.username NULLS LAST, r.account_owner_id""",
                    p,
                )
            ],
        ),
        (
            "dashboard: recovery of detractors",
            lambda: selectors.recovery(filters=everything),
            [
                raw(
                    """SELECT count(*) FILTER (WHERE nxt IS NOT NULL),
                              count(*) FILTER (WHERE nxt IN ('passive', 'promoter'))
                       FROM (SELECT r.category, lead(r.category) OVER (
                                 PARTITION BY r.contact_id, r.program_id
                                 ORDER BY w.opens_at, r.wave_id) AS nxt
                             FROM surveys_response r JOIN surveys_wave w ON w.id = r.wave_id
                             WHERE r.program_id = %(program)s) s
                       WHERE category = 'detractor'""",
                    p,
                )
            ],
        ),
        (
            "GET /api/v1/nps/?group_by=tier",
            lambda: client.get("/api/v1/nps/?group_by=tier").json(),
            [
                raw(
                    f"SELECT tier, {counts} FROM surveys_response GROUP BY tier ORDER BY tier",
                )
            ],
        ),
        (
            "filtered report: one tier, one quarter (selector)",
            lambda: selectors.nps_overall(filters=one_tier_one_quarter),
            [raw(filtered_raw, q_params)],
        ),
        (
            "filtered report: GET /api/v1/nps/?program&tier=gold&quarter",
            lambda: client.get(
                f"/api/v1/nps/?program={program.pk}&tier=gold"
                f"&submitted_after={quarter_start}&submitted_before={quarter_end}"
            ).json(),
            [raw(filtered_raw, q_params)],
        ),
    ]
    print(f"\nmedian of {args.runs} runs after a warm-up, milliseconds")
    print(f"{'report':<62} {'product':>9} {'raw SQL':>9} {'ratio':>6}")
    for label, product, ceilings in cases:
        product_ms = median_ms(product, args.runs)
        ceiling_ms = median_ms(lambda ceilings=ceilings: [c() for c in ceilings], args.runs)
        print(f"{label:<62} {product_ms:9.1f} {ceiling_ms:9.1f} {product_ms / ceiling_ms:6.2f}")

    page_ms = median_ms(lambda: client.get(f"/reports/?program={program.pk}"), args.runs)
    print(f"{'(the whole dashboard page, for reference)':<62} {page_ms:9.1f}")

    print("\nplans (scan lines of EXPLAIN ANALYZE)")
    print("- filtered report, raw SQL:")
    for line in plan_scans(filtered_raw, q_params):
        print("    " + line)
    (orm_sql,) = captured_sql(lambda: selectors.nps_overall(filters=one_tier_one_quarter))
    print("- filtered report, as the selector sends it:")
    for line in plan_scans(orm_sql):
        print("    " + line)
    print("- segment table by tier, as the selector sends it:")
    (seg_sql,) = captured_sql(lambda: selectors.segment_table(filters=everything, by="tier"))
    for line in plan_scans(seg_sql):
        print("    " + line)
    print("- recovery, as the selector sends it:")
    (rec_sql,) = captured_sql(lambda: selectors.recovery(filters=everything))
    for line in plan_scans(rec_sql)[:6]:
        print("    " + line)


if __name__ == "__main__":
    main()
