"""The demo loader behind README command 1."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from followups.models import FollowUp, FollowUpRule
from surveys.models import Contact, Partner, Response, Wave

pytestmark = pytest.mark.django_db


def run_demo_setup() -> str:
    out = StringIO()
    call_command("demo_setup", stdout=out)
    return out.getvalue()


def test_the_demo_loads_history_opens_the_current_wave_and_loads_once():
    output = run_demo_setup()

    assert (Partner.objects.count(), Contact.objects.count()) == (50, 152)
    waves = Wave.objects.order_by("opens_at")
    assert [w.status for w in waves] == ["closed"] * 4 + ["open"]
    detractors = Response.objects.filter(category="detractor")
    assert detractors.exists()
    # Every detractor of the history has its one follow-up; some loops are closed, some overdue.
    assert FollowUp.objects.filter(response__in=detractors).count() == detractors.count()
    assert FollowUp.objects.filter(status="closed").exists()
    assert FollowUp.objects.filter(status="open").exists()
    # Recovery figures have data: some past detractors answered again.
    assert FollowUp.objects.filter(next_response__isnull=False).exists()
    assert set(get_user_model().objects.values_list("username", flat=True)) >= {
        "ada",
        "maria",
        "sam",
        "olga",
    }
    assert "password for all: partner-nps-demo" in output
    # An admin's starting rules, a key contact per Platinum partner, and nothing left to settle.
    assert list(FollowUpRule.objects.values_list("position", "priority")) == [
        (10, "urgent"),
        (20, "high"),
        (30, "normal"),
    ]
    platinum = Partner.objects.filter(tier__name="Platinum")
    assert Contact.objects.filter(is_key=True).count() == platinum.count() > 0
    assert not Response.objects.exclude(settle_state="done").exists()

    # Loading it again changes nothing.
    counts = (Response.objects.count(), FollowUp.objects.count(), Wave.objects.count())
    assert "already loaded" in run_demo_setup()
    assert (Response.objects.count(), FollowUp.objects.count(), Wave.objects.count()) == counts
