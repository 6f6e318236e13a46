"""Load the demo: staff users, the sample partners, a program with four past quarterly waves of
realistic answers, follow-ups and changes, and the current wave opened for the worker to send."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from followups.models import (
    Change,
    FollowUp,
    FollowUpEvent,
    FollowUpRule,
    PartnerNotice,
    RootCause,
)
from followups.services import followup_pick_assignee, followups_link_next_response, working_sla
from followups.sla import add_business_days, add_business_hours
from nps_project import roles
from scoring.nps import category
from surveys import services
from surveys.importing import partners_import
from surveys.models import Contact, Invitation, Program, Response, Tier, Wave
from surveys.schedule import Cadence, period_label

DEMO_PROGRAM = "Partner Program NPS"
CSV_PATH = Path(settings.BASE_DIR) / "demo" / "partners.csv"
PASSWORD = "partner-nps-demo"
USERS = [
    # username, email, role, superuser
    ("ada", "ada@example.com", roles.ADMIN, True),
    ("maria", "maria@example.com", roles.CS_MANAGER, False),
    ("sam", "sam@example.com", roles.CS_STAFF, False),
    ("olga", "olga@example.com", roles.CS_STAFF, False),
]

COMMENTS = {
    "promoter": [
        "Our channel manager is responsive and knows our business.",
        "Deal registration is quick and margins are fair.",
        "Great enablement sessions this quarter; our team is certified now.",
        "The product sells itself and support has our back.",
        "Co-marketing funds were easy to claim.",
        "",
    ],
    "passive": [
        "Good product, but the partner portal is clunky.",
        "Margins are OK; competitors offer more MDF.",
        "Support is fine, not great. Tickets take a day or two.",
        "Training content is a bit dated.",
        "",
    ],
    "detractor": [
        "Support takes days to answer, and our customers notice.",
        "Deal registration conflicts cost us two deals this quarter.",
        "Pricing changed without notice; our quotes were wrong.",
        "The portal keeps logging us out and quotes get lost.",
        "We never hear from our channel manager.",
        "Onboarding new engineers is hard: no enablement in German.",
    ],
}
# Share of promoters and detractors per past wave, oldest first: the program improves.
MIX = [(0.34, 0.32), (0.38, 0.28), (0.42, 0.24), (0.47, 0.19)]


class Command(BaseCommand):
    help = (
        "Load demo data (idempotent: does nothing if the demo program exists) and open the "
        "current wave. Run after `migrate`; the worker then sends the invitations to the outbox."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=2026, help="Random seed for the history.")

    def handle(self, *args, seed: int = 2026, **options):
        if Program.objects.filter(name=DEMO_PROGRAM).exists():
            self.stdout.write("Demo data already loaded.")
            self._print_logins()
            return
        rng = random.Random(seed)
        now = timezone.now()
        with transaction.atomic():
            users = self._users()
            with CSV_PATH.open(encoding="utf-8", newline="") as handle:
                report = partners_import(file=handle)
            if not report.ok:
                raise CommandError(f"The demo CSV did not import: {report.errors[:3]}")
            program = self._program(now)
            history = self._history(program, now, rng, users)
            self._rules(users)
        opened = services.waves_open_due(now=now)
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {Contact.objects.count()} contacts of "
                f"{Contact.objects.values('partner').distinct().count()} partners, "
                f"{history} past responses; opened the current wave: "
                f"{', '.join(str(w) for w in opened) or 'none'}."
            )
        )
        self._print_logins()

    def _print_logins(self):
        self.stdout.write(f"Logins at {settings.SITE_URL}/login/ (password for all: {PASSWORD}):")
        for username, _email, role, _su in USERS:
            self.stdout.write(f"  {username:6} {role}")

    def _users(self) -> dict[str, object]:
        User = get_user_model()
        users = {}
        for username, email, role, superuser in USERS:
            user, _created = User.objects.get_or_create(
                username=username,
                defaults={"email": email, "first_name": username.title()},
            )
            user.email = email
            user.is_active = True
            user.is_staff = superuser
            user.is_superuser = superuser
            user.set_password(PASSWORD)
            user.save()
            user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def _rules(self, users) -> None:
        """Follow-up rules an admin would start with, and a few key contacts (whose silence
        in a wave becomes a "no response" follow-up)."""
        platinum = FollowUpRule.objects.create(
            name="Platinum and Gold detractors: urgent, to the account owner",
            position=10,
            category="detractor",
            priority=FollowUp.Priority.URGENT,
            assignee_strategy=FollowUpRule.Strategy.ACCOUNT_OWNER,
            first_contact_hours=4,
        )
        platinum.tiers.set(Tier.objects.filter(name__in=["Platinum", "Gold"]))
        FollowUpRule.objects.create(
            name="Asked to be contacted",
            position=20,
            requires_wants_contact=True,
            priority=FollowUp.Priority.HIGH,
            assignee_strategy=FollowUpRule.Strategy.ROUND_ROBIN,
        )
        FollowUpRule.objects.create(
            name="Passives mentioning pricing or discounts: to the manager",
            position=30,
            category="passive",
            keywords="pricing, price, discount",
            requires_comment=True,
            assignee_strategy=FollowUpRule.Strategy.USER,
            assignee=users["maria"],
        )
        # The first contact of each Platinum partner is a key contact.
        ids = (
            Contact.objects.filter(partner__tier__name="Platinum")
            .values("partner_id")
            .annotate(first=Min("pk"))
            .values_list("first", flat=True)
        )
        Contact.objects.filter(pk__in=list(ids)).update(is_key=True)

    def _program(self, now: dt.datetime) -> Program:
        # Anchor the quarterly cadence on yesterday, so the current period's wave is due now.
        anchor = (now.astimezone(timezone.get_default_timezone()) - dt.timedelta(days=1)).date()
        anchor = anchor.replace(day=min(anchor.day, 28))
        return Program.objects.create(
            name=DEMO_PROGRAM,
            sender_name="Northstar Partner Program",
            subject="Two minutes: how likely are you to recommend Northstar?",
            question="How likely are you to recommend Northstar to a colleague or peer?",
            why_prompt="What is the main reason for your score?",
            frequency=Program.Frequency.QUARTERLY,
            anchor_month=anchor.month,
            anchor_day=anchor.day,
            send_hour=0,
            time_zone="UTC",
            starts_on=anchor - dt.timedelta(days=730),
            response_window_days=21,
            reminder_days=[5, 12],
            max_reminders=2,
            throttle_days=60,
        )

    def _history(self, program: Program, now, rng: random.Random, users) -> int:
        cadence = Cadence.of(program)
        current = cadence.period_on_or_before(now)
        periods = []
        period = current
        for _ in MIX:
            period = cadence.previous_period(period)
            periods.append(period)
        periods.reverse()
        contacts = list(Contact.objects.select_related("partner__tier", "partner__partner_type"))
        root_causes = list(RootCause.objects.all())
        staff = [users["sam"], users["olga"]]
        changes = self._changes(users, now)
        total = 0
        detractors: set[int] = set()
        for index, (period, (p_promoter, p_detractor)) in enumerate(zip(periods, MIX, strict=True)):
            opens_at = cadence.opens_at(period)
            wave = Wave.objects.create(
                program=program,
                period_start=period,
                label=period_label(period, program.frequency),
                opens_at=opens_at,
                closes_at=opens_at + dt.timedelta(days=program.response_window_days),
                status=Wave.Status.CLOSED,
            )
            invitations = Invitation.objects.bulk_create(
                [
                    Invitation(
                        wave=wave,
                        contact=contact,
                        status=Invitation.Status.SENT,
                        attempts=1,
                        created_at=opens_at,
                        sent_at=opens_at + dt.timedelta(minutes=rng.randint(1, 30)),
                    )
                    for contact in contacts
                ]
            )
            for invitation in invitations:
                if rng.random() > 0.55:
                    continue  # did not answer
                roll = rng.random()
                # Past detractors are harder to win back: about half stay detractors.
                unhappy = invitation.contact_id in detractors
                promoter_share = p_promoter / 2 if unhappy else p_promoter
                detractor_share = 0.5 if unhappy else p_detractor
                if roll < promoter_share:
                    score = rng.choice([9, 9, 10, 10, 10])
                elif roll < promoter_share + detractor_share:
                    score = rng.choice([2, 3, 4, 5, 5, 6, 6, 6])
                else:
                    score = rng.choice([7, 8, 8])
                submitted = opens_at + dt.timedelta(hours=rng.randint(2, 24 * 12))
                response = self._response(invitation, score, rng, submitted)
                followups_link_next_response(response=response)  # for recovery figures
                if response.category == Response.Category.DETRACTOR:
                    detractors.add(invitation.contact_id)
                else:
                    detractors.discard(invitation.contact_id)
                total += 1
                if response.category == Response.Category.DETRACTOR:
                    self._followup(response, index, rng, staff, root_causes, changes, submitted)
        return total

    def _response(self, invitation, score, rng, submitted) -> Response:
        contact = invitation.contact
        partner = contact.partner
        cat = category(score)
        return Response.objects.create(
            invitation=invitation,
            wave=invitation.wave,
            program_id=invitation.wave.program_id,
            partner=partner,
            contact=contact,
            score=score,
            category=cat,
            comment=rng.choice(COMMENTS[cat]),
            language=services.supported_language(contact.language),
            tier=partner.tier.name,
            partner_type=partner.partner_type.name,
            region=partner.region,
            account_owner_id=partner.account_owner_id,
            submitted_at=submitted,
            # History: its follow-ups are made below, as they were then; nothing left to settle.
            settle_state=Response.SettleState.DONE,
        )

    def _changes(self, users, now) -> list[Change]:
        specs = [
            (
                "Partner support answers within four business hours",
                "We added a dedicated partner support queue. Every partner ticket now gets a "
                "first answer from an engineer within four business hours.",
                Change.Category.SUPPORT,
                "sam",
                200,
            ),
            (
                "Deal registration decided within one business day",
                "Deal registrations are now approved or declined within one business day, and "
                "conflicts go to a named channel manager instead of a shared inbox.",
                Change.Category.PROCESS,
                "maria",
                110,
            ),
            (
                "Quotes in the partner portal are saved as drafts",
                "The portal no longer logs you out while you build a quote, and quotes are "
                "saved as drafts automatically.",
                Change.Category.PORTAL,
                "olga",
                None,
            ),
        ]
        changes = []
        for title, description, cat, owner, shipped_days_ago in specs:
            shipped = shipped_days_ago is not None
            changes.append(
                Change.objects.create(
                    title=title,
                    description=description,
                    category=cat,
                    owner=users[owner],
                    created_by=users[owner],
                    status=Change.Status.SHIPPED if shipped else Change.Status.IN_PROGRESS,
                    shipped_at=now - dt.timedelta(days=shipped_days_ago) if shipped else None,
                )
            )
        return changes

    def _followup(self, response, wave_index, rng, staff, root_causes, changes, submitted):
        partner = response.partner
        assignee = followup_pick_assignee(partner=partner) or rng.choice(staff)
        sla = working_sla()
        followup = FollowUp.objects.create(
            response=response,
            partner=partner,
            assignee=assignee,
            priority=FollowUp.Priority.HIGH if response.score <= 3 else FollowUp.Priority.NORMAL,
            due_at=add_business_days(submitted, settings.NPS_FOLLOWUP_SLA_BUSINESS_DAYS),
            resolution_due_at=add_business_hours(submitted, sla.resolution_hours, sla.calendar),
            created_at=submitted,
        )
        events = [
            FollowUpEvent(
                followup=followup,
                kind="created",
                new_value=f"score {response.score}",
                created_at=submitted,
            ),
            FollowUpEvent(
                followup=followup,
                kind="assigned",
                new_value=assignee.get_username(),
                created_at=submitted,
            ),
        ]
        latest_wave = wave_index == len(MIX) - 1
        # Older waves are worked through; the latest one still has open and overdue work.
        stage = rng.choice([0, 1, 1, 2, 3, 4]) if latest_wave else rng.choice([4, 4, 4, 5])
        when = submitted
        if stage >= 1:
            when = submitted + dt.timedelta(hours=rng.randint(3, 60))
            followup.first_contacted_at = when
            followup.status = FollowUp.Status.CONTACTED
            events += [
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="call",
                    created_at=when,
                    note="Called the contact; they walked me through the problem.",
                ),
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="status",
                    old_value="open",
                    new_value="contacted",
                    created_at=when,
                ),
            ]
        if 2 <= stage <= 4:
            when += dt.timedelta(days=rng.randint(1, 5))
            followup.status = FollowUp.Status.ACTION_PLANNED
            events.append(
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="status",
                    old_value="contacted",
                    new_value="planned",
                    created_at=when,
                )
            )
        if 3 <= stage <= 4:
            when += dt.timedelta(days=rng.randint(2, 10))
            followup.status = FollowUp.Status.RESOLVED
            followup.root_cause = rng.choice(root_causes)
            followup.action_taken = "Escalated to the owning team; fix agreed with the partner."
            followup.resolved_at = when
            events.append(
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="status",
                    old_value="planned",
                    new_value="resolved",
                    note=followup.action_taken,
                    created_at=when,
                )
            )
        if stage == 5:
            followup.status = FollowUp.Status.CLOSED_NO_ACTION
            followup.closed_reason = "Partner is winding down this product line."
            events.append(
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="status",
                    old_value="contacted",
                    new_value="no_action",
                    note=followup.closed_reason,
                    created_at=when,
                )
            )
        followup.save()
        if stage == 4:
            shipped = [c for c in changes if c.status == Change.Status.SHIPPED]
            change = rng.choice(shipped)
            change.followups.add(followup)
            told = max(change.shipped_at, when) + dt.timedelta(hours=2)
            PartnerNotice.objects.create(
                change=change,
                followup=followup,
                requested_by=assignee,
                status=PartnerNotice.Status.SENT,
                attempts=1,
                sent_at=told,
                created_at=told,
            )
            followup.status = FollowUp.Status.LOOP_CLOSED
            followup.loop_closed_at, followup.loop_closed_by = told, assignee
            followup.save()
            events += [
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="linked",
                    new_value=change.title,
                    created_at=when,
                ),
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="told",
                    new_value=change.title,
                    created_at=told,
                ),
                FollowUpEvent(
                    followup=followup,
                    actor=assignee,
                    kind="status",
                    old_value="resolved",
                    new_value="closed",
                    created_at=told,
                ),
            ]
        elif stage in (2, 3) and rng.random() < 0.5:
            in_progress = [c for c in changes if c.status != Change.Status.SHIPPED]
            in_progress[0].followups.add(followup)
        FollowUpEvent.objects.bulk_create(events)
