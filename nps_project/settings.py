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

from nps_project.ratelimit import parse_rate

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
    # Swagger UI's files for /api/docs/, served from here (no CDN).
    "drf_spectacular_sidecar",
    "surveys",
    "scoring",
    "followups",
    "api",
    "webhooks",
    "audit",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page (429).
    "axes.middleware.AxesMiddleware",
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
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
        "DATABASE_PREPARED_STATEMENTS", default=True
    ):
        # Server-side binding, and a statement prepared after its fifth run on a connection
        # (Django turns psycopg's preparing off by default), so the partner's pages are not
        # planned again on every request: the survey link's lookup joins eight tables and
        # planning it costs ~25x executing it. Set DATABASE_PREPARED_STATEMENTS=false behind a
        # PgBouncer in transaction mode without max_prepared_statements.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {"server_side_binding": True, "prepare_threshold": 5}
        )
        # Django's backend, with its batches kept under the 65,535 parameters a statement that
        # server-side binding allows (nps_project/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "nps_project.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # Staff passwords guard partners' candid opinions: 12 characters at least (NIST 800-63B
    # asks for 8; a passphrase is easy at 12), plus the common-password list below.
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
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
    # The answers' follow-ups and webhooks: the form's write path only marks the row.
    "surveys-settle": {
        "task": "surveys.tasks.settle_responses",
        "schedule": env.float("NPS_SETTLE_INTERVAL_SECONDS", default=5.0),
    },
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
    # Per-program retention: comments and contact details past N months are anonymised.
    "privacy-retention": {
        "task": "surveys.tasks.apply_retention",
        "schedule": crontab(minute=17, hour=3),
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
        "api.filters.OrderingFilter",  # strict: an unknown ?ordering= field is 400
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
    # Markdown, shown at the top of /api/docs/.
    "DESCRIPTION": "Partners, contacts, programs, responses, follow-ups, changes, NPS figures "
    "and webhooks for integrations. The machine-readable schema is at [/api/schema/]"
    "(/api/schema/) (YAML; add `?format=json` for JSON); the guide is `docs/api.md`.\n\n"
    "**Authentication.** An integration sends `Authorization: Token <key>` (in *Authorize* "
    "here, enter `Token <key>`). Admins issue a user's token with `POST /api/v1/tokens/` (the "
    "key is shown only in that answer) and revoke it with `DELETE /api/v1/tokens/{user_id}/`; "
    "the integration acts with that user's role. Logged-in staff can also *Try it out* with "
    "their session. No credentials or an unknown token: 401; a role that does not allow it: "
    "403.\n\n"
    '**Errors** have one shape: `{"error": {"code", "message", "fields"}}` '
    "(`fields`: the messages per input field).\n\n"
    "**Lists** are page-numbered (`page`, `page_size`) except responses and follow-up events "
    "(cursors: follow `next`); `ordering` takes the fields each list names, comma-separated, "
    "`-` for descending.",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ (api/docs.py): Swagger UI from drf-spectacular-sidecar, nothing from a CDN; no
    # online validator badge (an image from validator.swagger.io).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
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

# --- Security -------------------------------------------------------------------------------
# Production is HTTPS: NPS_HTTPS defaults to on when DEBUG is off and NPS_SITE_URL is https://
# (the address partners' links use), off for the embedded demo on http://127.0.0.1. On, it
# turns on secure cookies, HSTS and the HTTPS redirect; each can still be set on its own.
# `make lint` runs `manage.py check --deploy` with production-like values (see the Makefile).
NPS_HTTPS = env.bool("NPS_HTTPS", default=not DEBUG and SITE_URL.startswith("https://"))
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=NPS_HTTPS)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=NPS_HTTPS)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# A staff session lasts a working day (8 hours), not the default two weeks.
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 3600)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=NPS_HTTPS)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (nginx, a load balancer).
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=NPS_HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if NPS_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Staff pages: no Referer beyond this site. Partner pages send "no-referrer" themselves.
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Request bodies: the survey form is a few kB; the CSV import is a file upload (streamed to
# disk past FILE_UPLOAD_MAX_MEMORY_SIZE, bounded by the import itself). A larger body or more
# fields is a 400, before any view runs.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", default=256 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

# Content-Security-Policy (django-csp): nothing from other origins except the https:// logo a
# program may set, no inline script anywhere, no framing, forms post only here. Staff pages
# allow inline style attributes (chart swatches, the outbox); partner pages do not
# (surveys.views.partner_page tightens style-src).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Login throttling (django-axes): 5 failed logins for one username from one address lock that
# pair out for an hour (the lockout page is a 429); a success resets the count. Logins without a
# request (the test client, scripts) are not watched: see nps_project/security.py.
AUTHENTICATION_BACKENDS = [
    "nps_project.security.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("NPS_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("NPS_LOGIN_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "nps_project.security.client_ip"
AXES_VERBOSE = False

# Behind N reverse proxies the client's address is the Nth from the right of X-Forwarded-For;
# 0 (the default) trusts only REMOTE_ADDR, which a client cannot forge.
NPS_TRUSTED_PROXY_COUNT = env.int("NPS_TRUSTED_PROXY_COUNT", default=0)

# The cache holds the rate-limit counters (partner links, API throttling) and login lockouts.
# Production: Redis (Django's own RedisCache backend with a one-round-trip incr, in
# nps_project.cache; shared by every web process) from
# CACHE_URL or REDIS_URL; without either, a per-process memory cache.
CACHE_URL = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "nps_project.cache.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "nps",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Partner links (survey form, score links, unsubscribe, partner page) are rate limited per
# client address (nps_project.ratelimit, counted in the cache): reads and writes counted apart,
# answered with a friendly 429 page. NPS_RATE_LIMIT_ENABLE=false turns it off (e.g. a load test
# from one address). A malformed rate stops the start-up.
NPS_RATE_LIMIT_ENABLE = env.bool("NPS_RATE_LIMIT_ENABLE", default=True)
NPS_LINK_READ_RATE = env.str("NPS_LINK_READ_RATE", default="120/m")
NPS_LINK_WRITE_RATE = env.str("NPS_LINK_WRITE_RATE", default="30/m")
for _rate in (NPS_LINK_READ_RATE, NPS_LINK_WRITE_RATE):
    parse_rate(_rate)

# bench/load.py's ceiling views under /bench/ (nps_project/bench_views.py). Never in production.
NPS_BENCH_VIEWS = env.bool("NPS_BENCH_VIEWS", default=False)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Survey and partner-page links carry their secret in the path: every record that reaches
    # the console (Django's "Not Found: /s/<token>/", runserver's request lines) is redacted.
    "filters": {"redact_tokens": {"()": "nps_project.redaction.RedactTokensFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_tokens"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Django's own loggers log at INFO and up unless told otherwise: LOG_LEVEL=ERROR also
    # silences its "Bad Request" / "Not Found" warning per 4xx answer.
    "loggers": {"django": {"level": LOG_LEVEL}, "django.db.backends": {"level": "INFO"}},
}
