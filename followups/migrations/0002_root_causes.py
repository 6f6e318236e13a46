"""A starting list of root causes; admins edit it."""

from django.db import migrations

ROOT_CAUSES = [
    "Support responsiveness",
    "Product quality",
    "Pricing and margins",
    "Partner portal",
    "Enablement and training",
    "Deal registration",
    "Communication",
    "Other",
]


def create_root_causes(apps, schema_editor):
    RootCause = apps.get_model("followups", "RootCause")
    for name in ROOT_CAUSES:
        RootCause.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("followups", "0001_initial")]

    operations = [migrations.RunPython(create_root_causes, migrations.RunPython.noop)]
