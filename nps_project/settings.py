"""
Settings for Partner NPS, read from the environment.

With no environment at all the project runs on the embedded default: SQLite in ``var/`` and
Celery's ``filesystem://`` transport in ``var/broker``, so a fresh machine needs no servers.
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis. A malformed value
fails loudly at start-up (django-environ raises ``ImproperlyConfigured``).
"""

from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("NPS_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="insecure-dev-key-only-for-the-embedded-demo-and-tests-do-not-deploy",
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# The absolute base of links in emails, e.g. https://nps.example.com (no trailing slash).
SITE_URL = env.str("NPS_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "surveys",
    "scoring",
    "followups",
    "api",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "nps_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "nps_project.context_processors.site",
            ],
        },
    },
]

WSGI_APPLICATION = "nps_project.wsgi.application"

# --- Database -----------------------------------------------------------------------------
# SQLite runs in WAL mode with IMMEDIATE transactions so the web process, the worker and beat
# can write side by side without "database is locked" errors.
SQLITE_PATH = VAR_DIR / "nps.sqlite3"
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so a Celery worker in another process sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_nps.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# A partner whose browser did not send the form's CSRF cookie gets a page in their language
# that says what to do; staff pages keep Django's page.
CSRF_FAILURE_VIEW = "surveys.views.csrf_failure"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "followups:queue"
LOGOUT_REDIRECT_URL = "login"

# --- I18n -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("ja", "日本語"),
]
# The partner-facing catalogues (form, pages, emails): locale/<lang>/LC_MESSAGES/django.po and
# the compiled .mo are both committed, so running the product needs no GNU gettext.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Email ----------------------------------------------------------------------------------
# The demo writes every message as an .eml file into var/outbox, which staff read at /outbox/.
OUTBOX_DIR = Path(env.str("NPS_OUTBOX_DIR", default=str(VAR_DIR / "outbox")))
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="nps_project.mail.OutboxBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Partner Program <nps@example.com>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Redis redelivers unacknowledged tasks after this many seconds; no task runs that long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The beat schedule is versioned here. Each entry is a thin tick that fans out small tasks.
CELERY_BEAT_SCHEDULE = {
    "surveys-tick": {"task": "surveys.tasks.run_survey_tick", "schedule": crontab()},
    "surveys-reconcile": {
        "task": "surveys.tasks.reconcile_surveys",
        "schedule": crontab(minute="*/5"),
    },
    # Reminders are days apart: a "what is due" query every five minutes, never broker ETAs.
    "surveys-reminders": {
        "task": "surveys.tasks.run_reminder_tick",
        "schedule": crontab(minute="*/5"),
    },
    "webhooks-reconcile": {
        "task": "webhooks.tasks.reconcile_webhooks",
        "schedule": crontab(minute="*/5"),
    },
    "followups-reconcile": {
        "task": "followups.tasks.reconcile_followups",
        "schedule": crontab(minute="*/5"),
    },
    "followups-escalate": {
        "task": "followups.tasks.escalate_overdue_followups",
        "schedule": crontab(minute="*/5"),
    },
    "followups-no-response": {
        "task": "followups.tasks.create_no_response_followups",
        "schedule": crontab(minute="*/15"),
    },
}

# --- Product defaults -----------------------------------------------------------------------
# Invitations are emailed in batches of this size over one SMTP connection per batch.
NPS_SEND_BATCH_SIZE = env.int("NPS_SEND_BATCH_SIZE", default=100)
NPS_SEND_MAX_ATTEMPTS = env.int("NPS_SEND_MAX_ATTEMPTS", default=5)
# A failed send waits base * 2**attempts seconds (at most the max) before the sweep takes it
# again. The end-to-end tests shorten these for their worker process.
NPS_SEND_RETRY_BASE_SECONDS = env.float("NPS_SEND_RETRY_BASE_SECONDS", default=60.0)
NPS_SEND_RETRY_MAX_SECONDS = env.float("NPS_SEND_RETRY_MAX_SECONDS", default=4 * 3600.0)
# A row claimed ("sending") for longer than this belonged to a worker that died; a queued row
# whose task has not run for this long lost its task. Keep it above CELERY_TASK_TIME_LIMIT, so a
# live task is never overtaken by the sweep (that would email twice).
NPS_SEND_STALE_SECONDS = env.float("NPS_SEND_STALE_SECONDS", default=900.0)
# Emails per minute across all programs (0 = no global limit); a program may set its own lower
# limit (Program.send_rate_per_minute). The beat tick releases at most this many rows a minute.
NPS_SEND_RATE_PER_MINUTE = env.int("NPS_SEND_RATE_PER_MINUTE", default=0)
# At most this many invitations (or reminders) are released per tick.
NPS_ENQUEUE_LIMIT = env.int("NPS_ENQUEUE_LIMIT", default=100_000)
# The shared secret that signs bounce and complaint events posted to /delivery/events/
# (HMAC-SHA256, see surveys/delivery.py). Empty = the endpoint refuses every event.
NPS_DELIVERY_EVENTS_SECRET = env.str("NPS_DELIVERY_EVENTS_SECRET", default="")
# First contact with a detractor is due this many business days after the response.
NPS_FOLLOWUP_SLA_BUSINESS_DAYS = env.int("NPS_FOLLOWUP_SLA_BUSINESS_DAYS", default=2)

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Token first: its WWW-Authenticate header makes an anonymous request a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.IsCustomerSuccess"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.UserThrottle"],
    # Per user, so per integration token. Counted in the default cache (per process unless a
    # shared cache is configured).
    "DEFAULT_THROTTLE_RATES": {"user": env.str("NPS_API_THROTTLE_RATE", default="600/minute")},
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Partner NPS API",
    "VERSION": "1.0.0",
    "DESCRIPTION": "Partners, contacts, programs, responses, follow-ups, changes, NPS figures "
    "and webhooks. Authenticate with `Authorization: Token <key>`. See docs/api.md.",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" or "category": name each choice set once.
    "ENUM_NAME_OVERRIDES": {
        "WaveStatusEnum": "surveys.models.Wave.Status",
        "InvitationStatusEnum": "surveys.models.Invitation.Status",
        "ResponseCategoryEnum": "surveys.models.Response.Category",
        "FollowUpStatusEnum": "followups.models.FollowUp.Status",
        "ChangeStatusEnum": "followups.models.Change.Status",
        "ChangeCategoryEnum": "followups.models.Change.Category",
        "DeliveryStatusEnum": "webhooks.models.Delivery.Status",
        "WebhookEventEnum": "webhooks.models.Subscription.Event",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
