"""schemathesis against the live API: no 5xx, every answer as the schema says.

The server is gunicorn on a free loopback port and on this test run's database (``make test``
runs it in its PostgreSQL pass; it also runs on SQLite by hand), seeded with a little of
everything. schemathesis runs every phase (examples, coverage, fuzzing, stateful) over every
operation with a bounded number of examples, as an admin token; its summary is printed in the
test output.

Where the time goes: about 3,400 of the run's 3,700 requests are the coverage phase (every
parameter's boundaries, wrong types and unexpected methods), a fixed matrix that
``--max-examples`` does not bound; fuzzing and stateful are bounded by ``MAX_EXAMPLES``. So the
run is kept cheap in its plumbing, not by testing less:

- gunicorn's ``gthread`` workers keep schemathesis' connection alive between requests (a sync
  worker closes it after every answer), and ``--preload`` imports Django once before forking;
  the application code is the same.
- schemathesis runs one worker. Its generation and checks hold Python's GIL, so more threads
  only contend (more CPU, no sooner done), and on Python 3.11 concurrent threads can crash it:
  Hypothesis parses the source of a filter's lambda with ``ast.parse``, whose recursion check
  is not thread-safe in CPython 3.11 ("SystemError: AST constructor recursion depth mismatch",
  gh-106905): a crash of the tool, not a finding about the API.
- The server logs errors only (``LOG_LEVEL=ERROR``), not a warning line per 4xx.

Checks: all of them but one. ``positive_data_acceptance`` expects every schema-valid request to
succeed, but a schema cannot say "this follow-up is already closed", "no user has id 7", "that
name is taken" or "ship the change first": those business rules answer 400 with a message, and
each is documented as a 400 of its operation. Excluding that one check keeps the rest strict:
``negative_data_rejection`` (schema-invalid input must be refused), response schema, status
code, content type and header conformance, and no server error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from nps_project import roles
from tests.factories import (
    ChangeFactory,
    ContactFactory,
    FollowUpFactory,
    InvitationFactory,
    PartnerFactory,
    ResponseFactory,
    UserFactory,
    WaveFactory,
)

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
# Per operation in the fuzzing and stateful phases. The coverage phase (boundary and invalid
# values of every parameter, unexpected methods) is deterministic and not bounded by it: it makes
# about 3,300 of the run's 3,500 requests.
MAX_EXAMPLES = 5
EXCLUDED_CHECKS = "positive_data_acceptance"  # business-rule 400s: see the module docstring
# An admin id far from the small ids schemathesis tries first, so a generated
# "POST /tokens/ {user: 1}" or "DELETE /tokens/1/" does not revoke the token the run uses.
ADMIN_ID = 987_654_321


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of this test run's database, for the server process."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or "postgres"
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{params['NAME']}"


def seed() -> str:
    """A little of everything, committed; returns the admin's token."""
    admin = UserFactory(
        id=ADMIN_ID, username="schema-admin", role=roles.ADMIN, is_staff=True, is_superuser=True
    )
    UserFactory(username="schema-agent", role=roles.CS_STAFF)
    wave = WaveFactory()
    for score in (10, 9, 7, 3, 0):
        response = ResponseFactory(
            invitation=InvitationFactory(wave=wave, contact=ContactFactory()), score=score
        )
        if score <= 6:
            FollowUpFactory(response=response, partner=response.partner)
    PartnerFactory()
    ChangeFactory()
    return Token.objects.create(user=admin).key


@pytest.fixture
def api_server(transactional_db, tmp_path):
    """gunicorn serving the test database; yields its base URL and an admin token."""
    token = seed()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "LOG_LEVEL": "ERROR",  # not a warning line per 4xx; errors (and tracebacks) still show
        "NPS_VAR_DIR": str(settings.VAR_DIR),
        "NPS_API_THROTTLE_RATE": "1000000/minute",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "nps_project.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--preload",
                "--worker-class",
                "gthread",  # keeps schemathesis' connections alive: see the module docstring
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "60",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/schema/?format=json", timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError("gunicorn did not start:\n" + log_path.read_text()) from None
            time.sleep(0.2)
    yield base, token, log_path
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(api_server, capsys):
    base, token, log_path = api_server
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{base}/api/schema/?format=json",
        "--url",
        base,
        "--header",
        f"Authorization: Token {token}",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",  # see the module docstring
        "--generation-deterministic",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    started = time.monotonic()
    # From a temporary folder, so schemathesis keeps its cache out of the repository.
    run = subprocess.run(
        command,
        cwd=log_path.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
    )
    elapsed = time.monotonic() - started
    output = run.stdout + run.stderr
    summary = output[output.find("API Operations:") :] if "API Operations:" in output else output
    with capsys.disabled():
        print(f"\nschemathesis on {connection.vendor} ({elapsed:.0f} s):\n{summary}")
    assert run.returncode == 0, output
    server_log = log_path.read_text(errors="replace")
    assert "Traceback" not in server_log, server_log
