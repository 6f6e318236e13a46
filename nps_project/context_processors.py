from django.conf import settings


def site(request):
    return {"SITE_URL": settings.SITE_URL, "OUTBOX_ENABLED": _outbox_enabled()}


def _outbox_enabled() -> bool:
    return settings.EMAIL_BACKEND == "nps_project.mail.OutboxBackend"
