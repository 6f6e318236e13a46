"""Default tiers, partner types and the three staff roles (all admin-editable afterwards)."""

from django.db import migrations

TIERS = ["Registered", "Silver", "Gold", "Platinum"]
PARTNER_TYPES = ["Reseller", "Distributor", "MSP", "Referral", "Technology"]
ROLES = ["Admin", "CS manager", "CS staff"]


def create_defaults(apps, schema_editor):
    Tier = apps.get_model("surveys", "Tier")
    PartnerType = apps.get_model("surveys", "PartnerType")
    Group = apps.get_model("auth", "Group")
    for rank, name in enumerate(TIERS):
        Tier.objects.get_or_create(name=name, defaults={"rank": rank})
    for rank, name in enumerate(PARTNER_TYPES):
        PartnerType.objects.get_or_create(name=name, defaults={"rank": rank})
    for name in ROLES:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
