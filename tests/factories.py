"""factory_boy factories for every model, in one place."""

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from followups.models import Change, FollowUp, RootCause
from nps_project import roles
from scoring.nps import category
from surveys.models import (
    Contact,
    Invitation,
    Partner,
    PartnerType,
    Program,
    Response,
    Tier,
    Wave,
)
from surveys.schedule import period_label

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


def staff_user(role: str = roles.CS_STAFF, **kwargs):
    return UserFactory(role=role, **kwargs)


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner

    name = factory.Sequence(lambda n: f"Partner {n} GmbH")
    tier = factory.LazyFunction(lambda: Tier.objects.get(name="Gold"))
    partner_type = factory.LazyFunction(lambda: PartnerType.objects.get(name="Reseller"))
    region = "EMEA"


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    partner = factory.SubFactory(PartnerFactory)
    name = factory.Sequence(lambda n: f"Contact {n}")
    email = factory.Sequence(lambda n: f"contact{n}@partner.example.com")
    language = "en"


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    name = factory.Sequence(lambda n: f"Program {n}")
    frequency = Program.Frequency.QUARTERLY
    anchor_month = 1
    anchor_day = 15
    send_hour = 9
    time_zone = "UTC"
    starts_on = dt.date(2020, 1, 1)
    response_window_days = 14
    throttle_days = 30


class WaveFactory(factory.django.DjangoModelFactory):
    """An open wave that opened an hour ago and closes in two weeks."""

    class Meta:
        model = Wave

    program = factory.SubFactory(ProgramFactory)
    opens_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=1))
    closes_at = factory.LazyAttribute(lambda w: w.opens_at + dt.timedelta(days=14))
    period_start = factory.LazyAttribute(lambda w: w.opens_at.date())
    label = factory.LazyAttribute(lambda w: period_label(w.period_start, 3))
    status = Wave.Status.OPEN


class InvitationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invitation

    wave = factory.SubFactory(WaveFactory)
    contact = factory.SubFactory(ContactFactory)
    status = Invitation.Status.SENT
    sent_at = factory.LazyFunction(timezone.now)


class ResponseFactory(factory.django.DjangoModelFactory):
    """A response written directly, as if settled (no follow-up is created: use response_submit
    for that, or ``settle_state=NEW`` for an answer whose after-commit work has not run)."""

    class Meta:
        model = Response

    invitation = factory.SubFactory(InvitationFactory)
    wave = factory.SelfAttribute("invitation.wave")
    program = factory.SelfAttribute("invitation.wave.program")
    contact = factory.SelfAttribute("invitation.contact")
    partner = factory.SelfAttribute("invitation.contact.partner")
    score = 3
    category = factory.LazyAttribute(lambda r: category(r.score))
    comment = "Support takes days to answer."
    tier = factory.LazyAttribute(lambda r: r.partner.tier.name)
    partner_type = factory.LazyAttribute(lambda r: r.partner.partner_type.name)
    region = factory.LazyAttribute(lambda r: r.partner.region)
    settle_state = Response.SettleState.DONE


class FollowUpFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FollowUp

    response = factory.SubFactory(ResponseFactory)
    partner = factory.SelfAttribute("response.partner")
    due_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=2))


class ChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Change

    title = factory.Sequence(lambda n: f"Change {n}")
    description = "Support now answers within four business hours."
    category = Change.Category.SUPPORT


def root_cause(name: str = "Support responsiveness") -> RootCause:
    return RootCause.objects.get(name=name)
