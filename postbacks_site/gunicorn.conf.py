"""gunicorn settings, so every start (make run, deploy units, benchmarks) is the same."""

import multiprocessing
import os

from events.common import collector

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# The longest request line gunicorn accepts (its maximum; the default is 4094). impact.com's URL
# templates are a few KB; a longer line is answered 414 by gunicorn itself, in HTML.
limit_request_line = 8190
# A worker that served this many requests is replaced: bounds memory growth.
max_requests = 10_000
max_requests_jitter = 1_000
# gunicorn 27 opens a control socket in the home directory unless told not to.
control_socket_disable = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# The path without its query string: a postback's `token` parameter must never reach a log.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
errorlog = "-"
wsgi_app = "postbacks_site.wsgi:application"


def post_worker_init(worker):
    # The worker has loaded the application: what it holds now is kept for good.
    collector.settle()
