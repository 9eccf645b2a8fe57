import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from delay_helpers import MIN, T0, send_at
from django.core import mail

from events import alerts
from events.alerts import notify, watcher
from events.models import DelayAlert, Notification

OPENED = T0 + 2 * 60 * MIN


class Hook:
    """A Slack-compatible incoming webhook that fails the first `fail` requests with 500."""

    def __init__(self, fail=0):
        self.fail = fail
        self.redirect = None  # a Location to answer 302 with
        self.bodies = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(body))
                status = 500 if len(hook.bodies) <= hook.fail else 302 if hook.redirect else 200
                self.send_response(status)
                if hook.redirect:
                    self.send_header("Location", hook.redirect)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(settings):
    server = Hook()
    settings.ALERT_WEBHOOK_URL = server.url
    yield server
    server.close()


@pytest.fixture
def emails(settings):
    settings.ALERT_EMAILS = ["ops@example.com", "support@example.com"]


def test_opening_and_resolving_send_an_email_each(send, emails):
    send_at(send, OPENED)
    assert notify.send_due_notifications(now=OPENED) == {"sent": 1, "failed": 0}
    assert notify.send_due_notifications(now=OPENED + MIN) == {"sent": 0, "failed": 0}
    opened = mail.outbox[0]
    assert opened.subject.startswith("[OPEN] Late postbacks – Acme Shoes")
    assert opened.to == ["ops@example.com", "support@example.com"]
    assert "action A1 tracked at 2026-11-20 22:03:11 UTC" in opened.body
    assert "/alerts/" in opened.body

    alerts.resolve(DelayAlert.objects.get(), note="impact.com confirmed", now=OPENED + 30 * MIN)
    notify.send_due_notifications(now=OPENED + 30 * MIN)
    assert [m.subject[:10] for m in mail.outbox] == ["[OPEN] Lat", "[RESOLVED]"]


def test_webhook_posts_slack_compatible_json(send, hook):
    send_at(send, OPENED)
    notify.send_due_notifications(now=OPENED)
    assert len(hook.bodies) == 1
    assert hook.bodies[0]["text"].startswith("[OPEN] Late postbacks")


def test_failed_webhook_is_retried_with_backoff_and_the_failure_shown(send, hook, staff_client):
    hook.fail = 2
    send_at(send, OPENED)

    assert notify.send_due_notifications(now=OPENED) == {"sent": 0, "failed": 1}
    notification = Notification.objects.get()
    assert "webhook answered 500" in notification.last_error
    assert notification.next_attempt_at == OPENED + MIN
    assert "webhook answered 500" in staff_client.get(f"/alerts/{notification.alert_id}/").content.decode()

    assert notify.send_due_notifications(now=OPENED + MIN / 2) == {"sent": 0, "failed": 0}
    assert notify.send_due_notifications(now=OPENED + MIN) == {"sent": 0, "failed": 1}
    notification.refresh_from_db()
    assert notification.next_attempt_at == OPENED + MIN + 2 * MIN  # backing off

    assert notify.send_due_notifications(now=OPENED + 3 * MIN) == {"sent": 1, "failed": 0}
    notification.refresh_from_db()
    assert (notification.attempts, notification.sent_at, notification.last_error) == (3, OPENED + 3 * MIN, "")
    assert len(hook.bodies) == 3


def test_a_line_break_in_a_brand_name_or_action_id_leaves_the_subject_one_line_and_the_email_goes(send, emails):
    send_at(send, OPENED, CampaignName="Acme\r\nBcc: everyone@example.com", action_id="A1\nX")
    assert notify.send_due_notifications(now=OPENED) == {"sent": 1, "failed": 0}
    (email,) = mail.outbox
    assert email.subject.startswith("[OPEN] Late postbacks – Acme Bcc: everyone@example.com")
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.to == ["ops@example.com", "support@example.com"]
    assert not Notification.objects.filter(gave_up=True).exists()


def test_slack_text_escapes_what_slack_reads_as_mentions_links_and_entities(send, hook):
    send_at(send, OPENED, CampaignName="<!channel> Shoes & <https://evil.example|Co>")
    notify.send_due_notifications(now=OPENED)
    text = hook.bodies[0]["text"]
    assert "&lt;!channel&gt; Shoes &amp; &lt;https://evil.example|Co&gt;" in text
    assert "<" not in text and ">" not in text


def test_a_webhook_redirect_is_a_failure_not_followed(send, hook):
    hook.redirect = "http://127.0.0.1:9/elsewhere"
    send_at(send, OPENED)
    assert notify.send_due_notifications(now=OPENED) == {"sent": 0, "failed": 1}
    assert "webhook answered 302" in Notification.objects.get().last_error


def still_late(alert, now):
    """Late postbacks keep coming, so the late alert stays open."""
    DelayAlert.objects.filter(pk=alert.pk).update(last_item_at=now)
    watcher.check(now=now)


def test_reminders_while_open_but_not_once_acknowledged(send, emails, settings):
    settings.ALERT_REPEAT_EVERY_MINUTES = 240
    send_at(send, OPENED)
    alert = DelayAlert.objects.get()
    reminders = Notification.objects.filter(reason="reminder")

    still_late(alert, OPENED + 3 * 60 * MIN)
    assert not reminders.exists()
    still_late(alert, OPENED + 4 * 60 * MIN)
    assert reminders.count() == 1
    still_late(alert, OPENED + 4 * 60 * MIN + MIN)
    assert reminders.count() == 1  # the next one in 4 h
    notify.send_due_notifications(now=OPENED + 4 * 60 * MIN + MIN)
    assert mail.outbox[-1].subject.startswith("[STILL OPEN]")

    alerts.acknowledge(alert, note="on it", now=OPENED + 5 * 60 * MIN)
    still_late(alert, OPENED + 9 * 60 * MIN)
    assert reminders.count() == 1
    assert DelayAlert.objects.get().status == "acknowledged"


def test_no_channel_configured_queues_nothing(send, settings):
    settings.ALERT_EMAILS = []
    settings.ALERT_WEBHOOK_URL = ""
    send_at(send, OPENED)
    assert DelayAlert.objects.exists() and not Notification.objects.exists()
