"""Settings, all read from the environment (django-environ).

Every variable is listed in `.env.example` with its default. A bad value raises
ImproperlyConfigured naming the variable.
"""

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import zoneinfo
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from csp.utils import DEFAULT_DIRECTIVES
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _int(name: str, default: int, minimum: int = 0) -> int:
    try:
        value = env.int(name, default=default)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = env.str(name, default=str(default)).strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def _cidrs(name: str) -> list[str]:
    values = [v.strip() for v in env.list(name, default=[]) if v.strip()]
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {value!r} is not an IP address or CIDR network") from exc
    return values


# --- Core --------------------------------------------------------------------
# PRODUCTION=true switches on every production safeguard: SECRET_KEY required,
# secure cookies, HSTS and HTTPS redirects.
PRODUCTION = _bool("PRODUCTION", False)
DEBUG = _bool("DEBUG", False)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY is required when PRODUCTION=true")
    # Local runs: generate one key once and keep it in an ignored file.
    path = Path(env.str("SECRET_KEY_FILE", default=str(BASE_DIR / ".secret_key")))
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _derived(purpose: str) -> bytes:
    """Outside production, a key of its own for each purpose, derived from SECRET_KEY."""
    return hmac.new(SECRET_KEY.encode(), purpose.encode(), hashlib.sha256).digest()


def _required_key(name: str) -> str:
    value = env.str(name, default="").strip()
    if not value and PRODUCTION:
        raise ImproperlyConfigured(f"{name} is required when PRODUCTION=true (see .env.example)")
    return value


# Credentials are stored as HMAC-SHA256 hashes under this key (32+ characters). Changing it makes
# every stored credential unrecognised: issue new ones. Unset outside production: derived from SECRET_KEY.
CREDENTIAL_HASH_KEY = _required_key("CREDENTIAL_HASH_KEY") or _derived("credential-hash").hex()
if len(CREDENTIAL_HASH_KEY) < 32:
    raise ImproperlyConfigured("CREDENTIAL_HASH_KEY must be at least 32 characters")
# Fernet keys (comma-separated; the first encrypts, all decrypt) for the impact.com Auth Token at
# rest. Make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
ENCRYPTION_KEYS = [key.strip() for key in _required_key("ENCRYPTION_KEY").split(",") if key.strip()] or [
    base64.urlsafe_b64encode(_derived("encryption")).decode()
]
for _key in ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError as exc:
        raise ImproperlyConfigured("ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes each)") from exc
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The address impact.com reaches this instance on; used to print the URL template.
PUBLIC_URL = env.str("PUBLIC_URL", default=f"http://127.0.0.1:{env.str('PORT', default='8000')}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "csp",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "events",
    "dashboard",
]

# Request ids for log lines first; the Content-Security-Policy header on every response;
# a NUL byte in any input but a postback's is a 400 before a view sees it.
MIDDLEWARE = [
    "events.common.logs.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "postbacks_site.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "postbacks_site.middleware.RejectNulMiddleware",
    "postbacks_site.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): logged in with a one-time code (django-otp); with
    # STAFF_REQUIRE_OTP, a staff session without one is ended on its next request.
    "django_otp.middleware.OTPMiddleware",
    "postbacks_site.middleware.StaffOTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# The postback endpoint's own chain (postbacks_site.wsgi serves /postbacks/ with it): the same
# without what serves people. A sender with a credential header has no session, CSRF token,
# login, one-time code, message, lockout or static file; that middleware was a twelfth of a
# postback's CPU on the request path.
PEOPLE_ONLY_MIDDLEWARE = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "postbacks_site.middleware.StaffOTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
}
ENDPOINT_MIDDLEWARE = [name for name in MIDDLEWARE if name not in PEOPLE_ONLY_MIDDLEWARE]

ROOT_URLCONF = "postbacks_site.urls"
WSGI_APPLICATION = "postbacks_site.wsgi.application"

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
                "dashboard.context_processors.banner",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------
# SQLite by default (WAL, a busy timeout and IMMEDIATE transactions, so concurrent
# senders wait for the write lock instead of failing with "database is locked");
# PostgreSQL in production through DATABASE_URL.
SQLITE_PATH = env.str("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3"))
try:
    # Unset or empty (as in .env.example): SQLite.
    _db = env.db_url_config(env.str("DATABASE_URL", default="") or f"sqlite:///{SQLITE_PATH}")
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
if not _db.get("ENGINE"):  # django-environ only warns about an unknown scheme
    raise ImproperlyConfigured("DATABASE_URL is not a database URL (expected postgres://... or sqlite:///...)")

if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": _int("SQLITE_BUSY_TIMEOUT", 30, minimum=1),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;",
    }
else:
    _db["CONN_MAX_AGE"] = _int("CONN_MAX_AGE", 60)
    # Off by default: the check is a round trip (SELECT 1) before every request's first query, a
    # tenth of a postback's cost on the request path. Without it, a connection a database restart
    # broke fails its next request (503: impact.com retries; a page asks to reload) and is replaced.
    _db["CONN_HEALTH_CHECKS"] = _bool("DATABASE_HEALTH_CHECKS", False)
    _db.setdefault("OPTIONS", {})["connect_timeout"] = _int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
    # Behind pgbouncer in transaction pooling: server-side cursors cannot outlive a transaction.
    _db["DISABLE_SERVER_SIDE_CURSORS"] = _bool("DATABASE_DISABLE_SERVER_SIDE_CURSORS", False)
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static --------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: a locked-out user+address is refused before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times on the dashboard are shown in this zone, with its name.
DISPLAY_TIME_ZONE = env.str("DISPLAY_TIME_ZONE", default="UTC")
try:
    zoneinfo.ZoneInfo(DISPLAY_TIME_ZONE)
except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
    raise ImproperlyConfigured(
        f"DISPLAY_TIME_ZONE must be an IANA time zone name such as Europe/Paris, not {DISPLAY_TIME_ZONE!r}"
    ) from exc

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security ----------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = _int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = _bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a hard-to-undo commitment for the whole domain: opt in, not a default to warn about.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- DRF -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "impact.com postbacks",
    "DESCRIPTION": "The webhook endpoint impact.com calls for every action lifecycle change "
    "(tracked, modified, reversed). See README.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema describes a public endpoint and holds no secret: served to anyone.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# --- Postbacks -------------------------------------------------------------------
# Bodies larger than this are refused with 413 before they are read.
POSTBACK_MAX_BODY_BYTES = _int("POSTBACK_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(POSTBACK_MAX_BODY_BYTES, 2_621_440)
# Extra parameter names (besides UpdateDate and its aliases) that carry the
# impact-side time of a change; used for ordering and for the delay.
POSTBACK_UPDATE_TIME_FIELDS = env.list("POSTBACK_UPDATE_TIME_FIELDS", default=[])
# A postback arriving later than this after its change is "late" (impact.com promises 15 min).
DELAY_LATE_AFTER_MINUTES = _int("DELAY_LATE_AFTER_MINUTES", 15, minimum=1)
# ... and later than this is a delay alert (impact.com: contact support after an hour).
DELAY_ALERT_AFTER_MINUTES = _int("DELAY_ALERT_AFTER_MINUTES", 60, minimum=1)
# How many refused attempts are kept for admins to inspect (oldest dropped first).
REFUSED_ATTEMPTS_KEEP = _int("REFUSED_ATTEMPTS_KEEP", 1000, minimum=10)
# Seconds impact.com is asked to wait before retrying when the database is down.
RETRY_AFTER_SECONDS = _int("RETRY_AFTER_SECONDS", 30, minimum=1)

# --- Processing (README, "What happens to a postback") ------------------------------
# Deliveries a processor claims and applies in one transaction. 500 drained a backlog 6 % faster
# than 300 (bench/ingest.py: a batch's totals, claim and commit cost about the same for more
# deliveries), and a batch still commits within half a second.
PROCESSING_BATCH_SIZE = _int("PROCESSING_BATCH_SIZE", 500, minimum=1)
# /healthz answers 503 (and the watcher opens an alert) when the oldest delivery waiting to be
# processed is older than this: no processor is running, or it cannot keep up.
PROCESSING_STALL_SECONDS = _int("PROCESSING_STALL_SECONDS", 60, minimum=5)

# --- Forwarding (README, "Forwarding") ----------------------------------------------
# Seconds a forwarding endpoint has to answer a message.
FORWARD_TIMEOUT_SECONDS = _int("FORWARD_TIMEOUT_SECONDS", 10, minimum=1)
# Messages a dispatcher sends at once (threads), each to its own action.
FORWARD_CONCURRENCY = _int("FORWARD_CONCURRENCY", 8, minimum=1)
# true: endpoints may be plain http and resolve to loopback, private or link-local addresses.
FORWARD_ALLOW_PRIVATE_TARGETS = _bool("FORWARD_ALLOW_PRIVATE_TARGETS", False)

# --- Delay alerts (README, "Delay alerts") ------------------------------------------
# Seconds between two passes of `manage.py watch_delays`.
WATCH_INTERVAL_SECONDS = _int("WATCH_INTERVAL_SECONDS", 60, minimum=1)
# Minutes between two reconciliations with impact.com's API inside the watcher.
RECONCILE_EVERY_MINUTES = _int("RECONCILE_EVERY_MINUTES", 15, minimum=1)
# First reconciliation reads this far back (hours); later ones continue from where they stopped.
RECONCILE_LOOKBACK_HOURS = _int("RECONCILE_LOOKBACK_HOURS", 24, minimum=1)
# Minutes between reminders for alerts still open (0: no reminders).
ALERT_REPEAT_EVERY_MINUTES = _int("ALERT_REPEAT_EVERY_MINUTES", 240)
# A brand is silent after this many times its usual gap between postbacks.
SILENT_BRAND_GAPS = _int("SILENT_BRAND_GAPS", 6, minimum=2)
# Who gets alert emails (comma-separated; empty: no email).
ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
if any("@" not in address for address in ALERT_EMAILS):
    raise ImproperlyConfigured("ALERT_EMAILS must be comma-separated email addresses")
# Optional Slack-compatible incoming webhook URL alerts are posted to.
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")
if ALERT_WEBHOOK_URL and not ALERT_WEBHOOK_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("ALERT_WEBHOOK_URL must be an http:// or https:// URL")
# impact.com's REST API (the account itself is entered in Django admin).
# The Auth Token goes with every request: https only, unless IMPACT_API_ALLOW_HTTP (a local test server).
IMPACT_API_BASE_URL = env.str("IMPACT_API_BASE_URL", default="https://api.impact.com").rstrip("/")
IMPACT_API_ALLOW_HTTP = _bool("IMPACT_API_ALLOW_HTTP", False)
if not IMPACT_API_BASE_URL.startswith(("http://", "https://") if IMPACT_API_ALLOW_HTTP else ("https://",)):
    raise ImproperlyConfigured(
        "IMPACT_API_BASE_URL must be an https:// URL (http:// only with IMPACT_API_ALLOW_HTTP=true, for tests)"
    )
# At most this many API requests per hour (impact.com documents about 500 for Actions).
IMPACT_API_REQUESTS_PER_HOUR = _int("IMPACT_API_REQUESTS_PER_HOUR", 500, minimum=1)
IMPACT_API_TIMEOUT = _int("IMPACT_API_TIMEOUT", 30, minimum=1)
# Email: Django's mail through an URL (console by default), e.g. smtp+tls://user:pass@host:587
try:
    vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"EMAIL_URL is not an email URL: {exc}") from exc
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="postbacks@localhost")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# json: one JSON object per line (default in production); plain: human-readable. Both carry the
# request id and, during a postback, the delivery id (events.common.logs).
LOG_FORMAT = env.str("LOG_FORMAT", default="").strip().lower() or ("json" if PRODUCTION else "plain")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "events.common.logs.ContextFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s delivery=%(delivery_id)s] %(message)s"
        },
        "json": {"()": "events.common.logs.json_formatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # axes.apps announces its configuration at every start, management commands included.
    "loggers": {"django.db.backends": {"level": "INFO"}, "axes.apps": {"level": "WARNING"}},
}

# --- Logins (README, "Security"): django-axes on /accounts/login/ and /admin/login/ ----------------
# Wrong passwords allowed for one username from one client address before that pair is locked out.
LOGIN_FAILURE_LIMIT = _int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
# Minutes a locked-out username+address waits (each try while locked starts the wait again).
LOGIN_COOLOFF_MINUTES = _int("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
# Per username and address together: one address guessing one user is stopped, while that user
# can still log in from elsewhere (so nobody can lock a colleague out from their own desk).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The address the rest of the site uses: X-Forwarded-For only from TRUSTED_PROXIES.
AXES_CLIENT_IP_CALLABLE = "events.common.networks.client_address"
# The styled lockout page, 429 with Retry-After (postbacks_site.accounts.locked_out).
AXES_LOCKOUT_CALLABLE = "postbacks_site.accounts.locked_out"
# Second factor (django-otp TOTP): anyone with a confirmed TOTP device gives its code at login.
# true: staff accounts without a device cannot log in, and staff sessions opened without a code end.
STAFF_REQUIRE_OTP = _bool("STAFF_REQUIRE_OTP", False)
# Admin never shows a device's secret again (not even to view-only staff): `manage.py
# add_totp_device` prints it once, for the authenticator app.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="impact.com postbacks")
# Password reset by email (/accounts/password_reset/): served only when EMAIL_URL delivers mail
# (not the console, file, in-memory or dummy backend); requests per client address and per email
# address before 429 (N/s, N/m, N/h, N/d).
PASSWORD_RESET_THROTTLE_RATE = env.str("PASSWORD_RESET_THROTTLE_RATE", default="5/h").strip()
if not re.fullmatch(r"[1-9][0-9]{0,8}/[smhd]\w*", PASSWORD_RESET_THROTTLE_RATE):
    raise ImproperlyConfigured("PASSWORD_RESET_THROTTLE_RATE must look like 5/h (per s, m, h or d)")
# Tests only (not read from the environment): treat Django's in-memory test backend as delivering.
PASSWORD_RESET_ANY_EMAIL_BACKEND = False

# --- Hardening (the refusal throttle, the allow-list's proxies, /metrics) --------------------
# Django's cache. Nothing on the request path needs it shared: the throttles count in the
# database (events.models.throttles), so the default is each process's memory.
try:
    CACHES = {"default": env.cache_url_config(env.str("CACHE_URL", default="") or "locmemcache://")}
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"CACHE_URL is not a cache URL: {exc}") from exc
# Refused postbacks allowed per client address before 429 (N/s, N/m, N/h, N/d, counted in fixed
# windows; empty: no throttle). Valid credentials are never throttled.
POSTBACK_REFUSAL_THROTTLE_RATE = env.str("POSTBACK_REFUSAL_THROTTLE_RATE", default="30/m").strip()
if POSTBACK_REFUSAL_THROTTLE_RATE and not re.fullmatch(r"[1-9][0-9]{0,8}/[smhd]\w*", POSTBACK_REFUSAL_THROTTLE_RATE):
    raise ImproperlyConfigured("POSTBACK_REFUSAL_THROTTLE_RATE must look like 30/m (per s, m, h or d)")
# Proxies (CIDRs) whose X-Forwarded-For is believed; from anyone else the header is ignored.
TRUSTED_PROXIES = _cidrs("TRUSTED_PROXIES")
# Content-Security-Policy of every response (django-csp): no inline scripts or styles, no framing
# (frame-ancestors 'none'). The variable is the header's text; empty: no header.
_CSP_DEFAULT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def _csp(text: str) -> dict | None:
    """`directive value value; directive ...` as django-csp's CONTENT_SECURITY_POLICY setting."""
    directives = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, *values = part.split()
        if name.lower() not in DEFAULT_DIRECTIVES:  # django-csp would drop it without a word
            raise ImproperlyConfigured(f"CONTENT_SECURITY_POLICY: unknown directive {name!r}")
        directives[name.lower()] = values or True
    if not directives:
        return None
    # default-src is django-csp's only default: state it, so the header says exactly what was asked.
    directives.setdefault("default-src", None)
    return {"DIRECTIVES": directives}


CONTENT_SECURITY_POLICY = _csp(env.str("CONTENT_SECURITY_POLICY", default=_CSP_DEFAULT))
# /metrics (Prometheus): a bearer token, or client addresses allowed without one.
# With neither set, /metrics answers 403.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_CIDRS = _cidrs("METRICS_ALLOWED_CIDRS")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters")
