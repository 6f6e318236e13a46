"""Run schemathesis against a live server: ``python tests/api/run_schemathesis.py``.

Starts ``manage.py runserver`` on a fresh database (SQLite in ``$NPS_VAR_DIR``, default
``/tmp/nps-schemathesis``, or ``$DATABASE_URL``), creates an admin with a token and a little data
(partners, a wave, responses, a follow-up, a change), runs schemathesis over every operation of
``/api/schema/`` with that token, prints its summary, and exits with its status. Not collected by
pytest (the name does not start with ``test_``); ``.ci/run`` can call it after the suite.

Options: ``--max-examples N`` (default 30), ``--checks`` (default ``all``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
SCHEMATHESIS = ROOT / ".venv" / "bin" / "schemathesis"

SEED = """
import datetime as dt
from django.utils import timezone
from rest_framework.authtoken.models import Token
from nps_project import roles
from surveys.services import response_submit
from tests.factories import (
    ChangeFactory, ContactFactory, InvitationFactory, PartnerFactory, UserFactory, WaveFactory,
)
admin = UserFactory(username="schema-admin", role=roles.ADMIN, is_staff=True, is_superuser=True)
UserFactory(username="schema-agent", role=roles.CS_STAFF)
wave = WaveFactory()
for n, score in enumerate([10, 9, 8, 3, 0]):
    invitation = InvitationFactory(wave=wave, contact=ContactFactory())
    response_submit(invitation_id=invitation.pk, score=score, comment=f"Comment {n}")
ChangeFactory()
print(Token.objects.get_or_create(user=admin)[0].key)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-examples", default="30")
    parser.add_argument("--checks", default="all")
    args = parser.parse_args()

    env = {**os.environ}
    env.setdefault("NPS_VAR_DIR", "/tmp/nps-schemathesis")
    env.setdefault("NPS_API_THROTTLE_RATE", "100000/minute")
    env.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    if "DATABASE_URL" not in env:
        Path(env["NPS_VAR_DIR"], "nps.sqlite3").unlink(missing_ok=True)
    manage = [str(PYTHON), "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run(
        [*manage, "shell", "-c", SEED],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = seeded.stdout.strip().splitlines()[-1]

    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(Path(env["NPS_VAR_DIR"]) / "runserver.log", "w"),  # noqa: SIM115
    )
    try:
        schema_url = f"http://127.0.0.1:{port}/api/schema/?format=json"
        for _ in range(100):
            try:
                urllib.request.urlopen(schema_url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        command = [
            str(SCHEMATHESIS),
            "run",
            schema_url,
            "--url",
            f"http://127.0.0.1:{port}",
            "-H",
            f"Authorization: Token {token}",
            "--checks",
            args.checks,
            "--max-examples",
            args.max_examples,
            "--generation-deterministic",
            "--request-timeout",
            "20",
        ]
        # Run from the var folder, so schemathesis keeps its .schemathesis/ cache out of the repo.
        return subprocess.run(command, cwd=env["NPS_VAR_DIR"], env=env).returncode
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
