"""Fill the new columns of existing follow-ups and create the default working calendar and
escalation rules; admins edit them."""

from django.db import migrations
from django.db.models import OuterRef, Subquery


def forwards(apps, schema_editor):
    FollowUp = apps.get_model("followups", "FollowUp")
    Response = apps.get_model("surveys", "Response")
    WorkingCalendar = apps.get_model("followups", "WorkingCalendar")
    EscalationRule = apps.get_model("followups", "EscalationRule")
    FollowUp.objects.filter(invitation__isnull=True, response__isnull=False).update(
        invitation_id=Subquery(
            Response.objects.filter(pk=OuterRef("response_id")).values("invitation_id")[:1]
        )
    )
    if not WorkingCalendar.objects.exists():
        WorkingCalendar.objects.create(name="Default", working_days=[0, 1, 2, 3, 4])
    if not EscalationRule.objects.exists():
        EscalationRule.objects.create(
            name="First contact overdue",
            position=10,
            measure="first_contact",
            hours_overdue=0,
            raise_priority_to="high",
        )
        EscalationRule.objects.create(
            name="First contact a day late",
            position=20,
            measure="first_contact",
            hours_overdue=8,
            raise_priority_to="urgent",
        )
        EscalationRule.objects.create(
            name="Resolution overdue",
            position=30,
            measure="resolution",
            hours_overdue=0,
            raise_priority_to="high",
        )


class Migration(migrations.Migration):
    dependencies = [
        ("followups", "0003_loop_rules_sla_escalation"),
        ("surveys", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
