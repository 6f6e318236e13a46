"""Follow-up rules and routing: ordered rules (first match wins), detractors always, exactly one
follow-up per response, assignee strategies, and the new assignee's email."""

import datetime as dt

import pytest
from django.core import mail
from django.db import IntegrityError
from django.utils import timezone

from followups import services
from followups.models import FollowUp, FollowUpEvent, FollowUpRule, StaffEmail
from surveys.models import Tier
from surveys.services import response_submit
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ResponseFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

Kind = FollowUpEvent.Kind
MONDAY = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)


def answer(score, comment="", *, partner=None, now=MONDAY):
    partner = partner or PartnerFactory()
    invitation = InvitationFactory(
        wave=WaveFactory(opens_at=now - dt.timedelta(hours=1)),
        contact=ContactFactory(partner=partner),
    )
    return response_submit(invitation_id=invitation.pk, score=score, comment=comment, now=now)


def rule(name, position, **kwargs):
    tiers = kwargs.pop("tiers", ())
    made = FollowUpRule.objects.create(name=name, position=position, **kwargs)
    made.tiers.set(tiers)
    return made


def followup_of(response):
    return FollowUp.objects.filter(response=response).first()


# --- Which responses get a follow-up ---------------------------------------------------------


def test_a_detractor_gets_a_followup_even_without_any_rule():
    assert FollowUpRule.objects.count() == 0
    followup = followup_of(answer(4, "Slow support."))
    assert followup is not None
    assert followup.rule is None
    assert followup.kind == FollowUp.Kind.RESPONSE


def test_a_passive_or_promoter_gets_none_without_a_rule():
    assert followup_of(answer(8, "Fine.")) is None
    assert followup_of(answer(10, "Great.")) is None


def test_a_passive_with_a_comment_matches_the_passives_rule():
    rule("Passives with a comment", 10, category="passive", requires_comment=True)
    with_comment = followup_of(answer(7, "Portal is clunky."))
    assert with_comment.rule.name == "Passives with a comment"
    assert followup_of(answer(7, "")) is None


def test_any_score_from_a_platinum_partner_matches_the_tier_rule():
    platinum = Tier.objects.get(name="Platinum")
    rule("Platinum, any score", 10, tiers=[platinum], priority="high")
    followup = followup_of(answer(10, "", partner=PartnerFactory(tier=platinum)))
    assert followup.rule.name == "Platinum, any score"
    assert followup.priority == "high"
    assert followup_of(answer(10, "", partner=PartnerFactory())) is None  # Gold


def test_a_keyword_in_the_comment_matches_whatever_its_case():
    rule("Churn risk", 10, keywords="cancel, competitor", priority="urgent")
    followup = followup_of(answer(9, "We might go to a COMPETITOR next year."))
    assert followup.rule.name == "Churn risk"
    assert followup.priority == "urgent"
    assert followup_of(answer(9, "All good.")) is None


def test_a_contact_who_asked_to_be_contacted_matches_the_wants_contact_rule():
    rule("Asked for a call", 10, requires_wants_contact=True)
    asked = ResponseFactory(score=9, comment="", wants_contact=True)
    not_asked = ResponseFactory(score=9, comment="")
    assert services.followup_for_response(response=asked, now=MONDAY).rule.name == (
        "Asked for a call"
    )
    assert services.followup_for_response(response=not_asked, now=MONDAY) is None


def test_a_score_range_bounds_the_rule_at_both_ends():
    rule("Low passives", 10, score_min=7, score_max=7)
    assert followup_of(answer(7)).rule.name == "Low passives"
    assert followup_of(answer(8)) is None


def test_rules_run_in_order_and_the_first_match_wins():
    rule("Second", 20, category="detractor", priority="high")
    rule("First", 10, category="detractor", priority="urgent")
    followup = followup_of(answer(2, "Bad."))
    assert followup.rule.name == "First"
    assert followup.priority == "urgent"
    created = followup.events.get(kind=Kind.CREATED)
    assert created.note == "Rule: First"


def test_an_inactive_rule_is_skipped():
    rule("Off", 10, category="detractor", priority="urgent", is_active=False)
    rule("On", 20, category="detractor", priority="high")
    assert followup_of(answer(2)).rule.name == "On"


def test_a_detractor_that_no_rule_matches_gets_the_default():
    rule("Platinum only", 10, tiers=[Tier.objects.get(name="Platinum")], priority="urgent")
    followup = followup_of(answer(2))
    assert followup.rule is None
    assert followup.priority == "high"  # the default for 0-3


def test_two_matching_rules_still_make_exactly_one_followup_per_response():
    rule("A", 10, category="detractor")
    rule("B", 20, keywords="support")
    response = answer(3, "Support is slow.")
    services.followup_for_response(response=response, now=MONDAY)
    services.followups_reconcile()
    response_submit(invitation_id=response.invitation_id, score=2, comment="Worse.", now=MONDAY)
    assert FollowUp.objects.filter(response=response).count() == 1


def test_the_database_refuses_a_second_followup_for_a_response():
    response = answer(3)
    with pytest.raises(IntegrityError):
        FollowUp.objects.create(response=response, partner=response.partner, due_at=timezone.now())


def test_the_rules_sla_sets_both_due_times_in_business_hours():
    rule("Fast lane", 10, category="detractor", first_contact_hours=4, resolution_hours=16)
    friday_afternoon = dt.datetime(2027, 3, 5, 15, 0, tzinfo=dt.UTC)
    followup = followup_of(answer(1, now=friday_afternoon))
    # Two hours on Friday, two on Monday morning.
    assert followup.due_at == dt.datetime(2027, 3, 8, 11, 0, tzinfo=dt.UTC)
    # Two hours on Friday, eight on Monday, six on Tuesday.
    assert followup.resolution_due_at == dt.datetime(2027, 3, 9, 15, 0, tzinfo=dt.UTC)


# --- Routing ---------------------------------------------------------------------------------


def test_the_account_owner_gets_the_followup(cs_agent, other_agent):
    followup = followup_of(answer(2, partner=PartnerFactory(account_owner=other_agent)))
    assert followup.assignee == other_agent
    assert followup.events.get(kind=Kind.ASSIGNED).note == "Account owner"


def test_round_robin_balances_by_open_load(cs_agent, other_agent):
    names = [followup_of(answer(2)).assignee.username for _ in range(4)]
    assert sorted(names) == ["olga", "olga", "sam", "sam"]
    loads = {name: names.count(name) for name in names}
    assert loads == {"olga": 2, "sam": 2}


def test_round_robin_skips_staff_whose_load_is_higher(cs_agent, other_agent):
    for _ in range(3):
        FollowUp.objects.filter(pk=followup_of(answer(2)).pk).update(assignee=cs_agent)
    # sam has three open, olga none: the next three all go to olga.
    assert [followup_of(answer(2)).assignee.username for _ in range(3)] == ["olga"] * 3


def test_a_rule_can_name_the_assignee(cs_agent, other_agent):
    rule("To Olga", 10, category="detractor", assignee_strategy="user", assignee=other_agent)
    partner = PartnerFactory(account_owner=cs_agent)
    followup = followup_of(answer(2, partner=partner))
    assert followup.assignee == other_agent
    assert followup.events.get(kind=Kind.ASSIGNED).note == "Named by the rule"


def test_a_round_robin_rule_ignores_the_account_owner(cs_agent, other_agent):
    rule("Pool", 10, category="detractor", assignee_strategy="round_robin")
    FollowUp.objects.filter(pk=followup_of(answer(2)).pk).update(assignee=other_agent)
    followup = followup_of(answer(2, partner=PartnerFactory(account_owner=other_agent)))
    assert followup.assignee == cs_agent


def test_a_named_assignee_who_left_falls_back_to_the_account_owner(cs_agent, other_agent):
    other_agent.is_active = False
    other_agent.save()
    rule("To Olga", 10, category="detractor", assignee_strategy="user", assignee=other_agent)
    followup = followup_of(answer(2, partner=PartnerFactory(account_owner=cs_agent)))
    assert followup.assignee == cs_agent


# --- The new assignee's email ----------------------------------------------------------------


def test_a_new_followup_emails_its_assignee_after_commit(
    cs_agent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        followup = followup_of(
            answer(2, "Support is slow.", partner=PartnerFactory(account_owner=cs_agent))
        )
    email = StaffEmail.objects.get(followup=followup)
    assert (email.recipient, email.kind, email.status) == (cs_agent, "assigned", "queued")
    assert len(callbacks) >= 1  # the task is enqueued only once the answer is committed
    assert mail.outbox == []

    assert services.staff_email_send(email_id=email.pk) is True
    assert services.staff_email_send(email_id=email.pk) is False  # delivered twice: sent once
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["sam@example.com"]
    assert message.subject == (
        f"Follow-up #{followup.pk} for {followup.partner.name} is yours (high priority)"
    )
    assert "scored 2 out of 10" in message.body
    assert "Support is slow." in message.body
    assert f"/followups/{followup.pk}/" in message.body
    notified = followup.events.get(kind=Kind.NOTIFIED)
    assert notified.new_value == "sam"
    assert "sam@example.com" in notified.note


def test_an_unassigned_followup_emails_nobody():
    followup = followup_of(answer(2))
    assert followup.assignee is None
    assert not StaffEmail.objects.exists()


def test_a_reassignment_emails_the_new_assignee_but_not_a_manager_taking_it(cs_manager, cs_agent):
    followup = followup_of(answer(2))
    services.followup_assign(followup_id=followup.pk, assignee=cs_agent, by=cs_manager)
    services.followup_assign(followup_id=followup.pk, assignee=cs_manager, by=cs_manager)
    assert list(StaffEmail.objects.values_list("recipient__username", flat=True)) == ["sam"]
