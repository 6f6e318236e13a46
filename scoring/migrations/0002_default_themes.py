"""The starting themes of the issue; admins edit or add more in the admin."""

from django.db import migrations

DEFAULT_THEMES = {
    "Support": "support\nticket\nhelpdesk\nanswer\nresponse time",
    "Pricing": "price\npricing\ndiscount\nmargin\ncost\nexpensive",
    "Portal": "portal\nlogin\ndeal registration\nwebsite",
    "Enablement": "training\nenablement\ncertification\nonboarding\ndocumentation",
}


def add_themes(apps, schema_editor):
    Theme = apps.get_model("scoring", "Theme")
    for name, keywords in DEFAULT_THEMES.items():
        Theme.objects.get_or_create(name=name, defaults={"keywords": keywords})


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_themes")]

    operations = [migrations.RunPython(add_themes, migrations.RunPython.noop)]
