"""Play impact.com over real HTTP against a receiver, then (--verify) check what it stored."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import timezone
from tqdm import tqdm

from events.management.arguments import positive_int
from events.models import DEFAULT_HEADER, Credential
from events.simulation import forwarded
from events.simulation import world as simulator
from events.simulation.demo import backdate
from events.simulation.sender import Sender, Target, wait_for_server
from events.simulation.verify import compare, read_state_http, read_state_orm

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_DIFFERENCES_SHOWN = 30
SIMULATOR_CREDENTIAL_LABEL = "demo simulator"


def parse_now(text: str):
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Send realistic impact.com postbacks (a seeded world, with impact.com's delivery faults) over HTTP, "
        "and with --verify compare the receiver's state with the simulated truth (exit 1 if anything differs)."
    )

    def add_arguments(self, parser):
        self._where_arguments(parser)
        self._world_arguments(parser)
        self._sending_arguments(parser)
        self._afterwards_arguments(parser)

    @staticmethod
    def _where_arguments(parser):
        parser.add_argument("--url", help="Postback endpoint (default: this instance, PUBLIC_URL + the endpoint path).")
        parser.add_argument(
            "--token",
            help="Credential secret. Default: create a short-lived credential labelled "
            f"'{SIMULATOR_CREDENTIAL_LABEL}' in this instance's database.",
        )
        parser.add_argument(
            "--header", default=DEFAULT_HEADER, help=f"Credential header name (default {DEFAULT_HEADER})."
        )
        parser.add_argument(
            "--token-in",
            choices=["header", "query"],
            default="header",
            help="Send the credential in the header (default) or as the `token` query parameter.",
        )
        parser.add_argument(
            "--method",
            choices=["get", "post-json"],
            default="get",
            help="GET query string (impact.com's recommended template, default) or POST with the JSON body template.",
        )

    @staticmethod
    def _world_arguments(parser):
        parser.add_argument("--scenario", choices=sorted(simulator.SCENARIOS), default="default")
        parser.add_argument("--seed", type=int, default=1, help="Same seed, same world (default 1).")
        parser.add_argument(
            "--now",
            type=parse_now,
            help="The world's present, ISO 8601 (default: now). With the same --seed, replays the same world exactly.",
        )
        parser.add_argument("--actions", type=positive_int, help="Number of actions (default: the scenario's).")
        parser.add_argument("--brands", type=positive_int, help="Number of brands (default: the scenario's).")

    @staticmethod
    def _sending_arguments(parser):
        parser.add_argument("--concurrency", type=positive_int, default=4, help="Sending threads (default 4).")
        parser.add_argument("--rate", type=float, default=0.0, help="At most this many requests/s (0: no limit).")
        parser.add_argument("--pause", type=float, help="Seconds of maintenance pause (default: the scenario's).")
        parser.add_argument(
            "--backoff", type=float, default=0.5, help="First retry delay in seconds, doubled each time."
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for each answer.")
        parser.add_argument("--wait", type=float, default=0.0, help="Wait up to this many seconds for the server.")
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Progress bar on stderr (sent/s, errors, retries, ETA). Default: when stderr is a terminal.",
        )

    @staticmethod
    def _afterwards_arguments(parser):
        parser.add_argument("--verify", action="store_true", help="Compare the receiver's state with the truth.")
        parser.add_argument(
            "--verify-via",
            choices=["auto", "orm", "http"],
            default="auto",
            help="Read the receiver through this "
            "project's database (orm) or GET /api/actions/ (http). auto: orm for this instance or a loopback URL.",
        )
        parser.add_argument("--api-url", help="Read-only actions API (default: /api/actions/ on the --url host).")
        parser.add_argument(
            "--verify-forwarding",
            action="store_true",
            help="Also verify the forwarded stream: a local receiver, registered as a forwarding endpoint for the "
            "run (needs FORWARD_ALLOW_PRIVATE_TARGETS=true and this instance), checks signatures, dedupes on "
            "webhook-id and checks each action's order; then lost / wrong / duplicated against the truth.",
        )
        parser.add_argument(
            "--backdate",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Afterwards, move receive times back to when impact.com would have sent each postback "
            "(demo: a month of history), then judge their delays. Sends with the simulator's own credential. "
            "Default: the scenario's.",
        )

    def handle(self, *args, **options):
        receiver = self._start_forwarding(options) if options["verify_forwarding"] else None
        try:
            self._run(receiver, options)
        finally:
            if receiver is not None:
                receiver.close()
                forwarded.deactivate(receiver.endpoint)

    def _run(self, receiver, options):
        scenario = simulator.SCENARIOS[options["scenario"]]
        if options["pause"] is not None:
            scenario = simulator.Scenario(**{**scenario.__dict__, "pause": max(0.0, options["pause"])})
        endpoint = settings.PUBLIC_URL + reverse("impact-postback")
        url = options["url"] or endpoint
        via = self._verify_via(options["verify_via"], url, endpoint)
        if not options["token"] and via == "http":
            raise CommandError(f"--token is required to send to {url} (not this instance).")
        backdating = options["backdate"] if options["backdate"] is not None else scenario.backdate
        if backdating and via != "orm":
            self.stdout.write("Not backdating: the receiver is not this project's database.")
            backdating = False
        if backdating:
            # Its postbacks' delays are judged once backdated, not on arrival: they need their own credential.
            if options["token"]:
                self.stdout.write("Backdating: sending with the simulator's own credential instead of --token.")
            token = self._own_credential(options["header"], simulated_history=True)
        else:
            token = options["token"] or self._own_credential(options["header"])
        try:
            target = Target(
                url, token, method=options["method"], header=options["header"], token_in=options["token_in"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        world = simulator.generate_world(
            options["seed"],
            scenario,
            now=options["now"] or timezone.now(),
            brands=options["brands"],
            actions=options["actions"],
        )
        plan = simulator.plan_deliveries(world, scenario)
        self._describe(scenario, world, plan, url, options["method"])
        if options["wait"] and not wait_for_server(target, options["wait"]):
            raise CommandError(f"Nothing answers on {target.host}:{target.port} after {options['wait']:.0f} s.")
        stats = self._send(target, world, plan, options)
        if stats.interrupted:
            raise CommandError("Interrupted: not every postback was sent, nothing verified.")
        if options["verify"]:
            self._verify(world, via, options, url, token)
        if receiver is not None:
            self._verify_forwarding(world, receiver, options["timeout"])
        if backdating:
            moved, judged = backdate(world, plan)
            self.stdout.write(
                f"Backdated {moved} events to when impact.com would have sent them; "
                f"{judged} over {settings.DELAY_ALERT_AFTER_MINUTES} min late joined a delay alert."
            )
        if stats.gave_up:
            raise CommandError(f"{stats.gave_up} postbacks were not accepted after 15 attempts.")

    def _describe(self, scenario, world, plan, url: str, method: str) -> None:
        counts = plan.counts()
        self.stdout.write(
            f"Scenario {scenario.name}, seed {world.seed}: {len(world.actions)} actions of {len(world.brands)} brands, "
            f"{len(world.changes())} changes -> {counts['postbacks']} postbacks "
            f"({counts['duplicates']} duplicates, {counts['lost_acks']} lost acknowledgements, "
            f"{counts['held']} held by a maintenance pause) to {url} ({method.upper()})"
        )

    def _send(self, target, world, plan, options):
        """Send the plan with a progress bar; SIGTERM stops after the postbacks in flight."""
        bar = tqdm(
            total=plan.counts()["postbacks"],
            unit="postback",
            file=sys.stderr,
            disable=None if options["progress"] is None else not options["progress"],
            dynamic_ncols=True,
        )

        def progress(stats, deltas):
            bar.update(deltas.get("sent", 0) + deltas.get("gave_up", 0))
            if deltas.keys() & {"errors", "retries", "gave_up"}:
                bar.set_postfix(errors=stats.errors, retries=stats.retries, gave_up=stats.gave_up, refresh=False)

        by_id = world.by_id()
        sender = Sender(
            target,
            lambda send: by_id[send.change.action_id].params(send.change),
            concurrency=options["concurrency"],
            rate=max(0.0, options["rate"]),
            backoff=max(0.0, options["backoff"]),
            timeout=options["timeout"],
            progress=progress,
        )
        started = time.monotonic()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: sender.stop())
        try:
            with bar:
                stats = sender.run(plan, on_pause=lambda s: bar.write(f"maintenance: pausing {s:g} s, then a burst"))
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self._report_sending(stats, max(time.monotonic() - started, 1e-9))
        return stats

    def _report_sending(self, stats, elapsed: float) -> None:
        errors = ", ".join(f"{kind}: {n}" for kind, n in stats.error_kinds.most_common()) or "none"
        self.stdout.write(
            f"Sent {stats.sent} postbacks in {elapsed:.1f} s ({stats.sent / elapsed:.0f}/s): "
            f"{stats.attempts} attempts, {stats.retries} retries, {stats.errors} errors ({errors}), "
            f"gave up: {stats.gave_up}"
        )
        outcomes = ", ".join(f"{name} {n}" for name, n in sorted(stats.outcomes.items())) or "none"
        self.stdout.write(f"Answers seen: {outcomes}")
        for failure in stats.failures[:MAX_DIFFERENCES_SHOWN]:
            self.stdout.write(f"  {failure}")

    def _own_credential(self, header: str, *, simulated_history: bool = False) -> str:
        now = timezone.now()
        # Every active credential is checked on each postback: switch off earlier runs' expired ones.
        Credential.objects.filter(label=SIMULATOR_CREDENTIAL_LABEL, active=True, expires_at__lte=now).update(
            active=False
        )
        expires = now + timedelta(hours=2)
        credential, secret = Credential.create_with_secret(
            label=SIMULATOR_CREDENTIAL_LABEL,
            header_name=header,
            expires_at=expires,
            simulated_history=simulated_history,
        )
        self.stdout.write(
            f"Created credential {credential.pk} '{SIMULATOR_CREDENTIAL_LABEL}' (expires {expires:%Y-%m-%d %H:%M} UTC)."
        )
        return secret

    def _start_forwarding(self, options) -> forwarded.ForwardReceiver:
        """The run's own receiver of forwarded messages, registered before any postback is applied."""
        endpoint = settings.PUBLIC_URL + reverse("impact-postback")
        if self._verify_via(options["verify_via"], options["url"] or endpoint, endpoint) != "orm":
            raise CommandError("--verify-forwarding needs the receiver to be this instance (its database).")
        if not settings.FORWARD_ALLOW_PRIVATE_TARGETS:
            raise CommandError("--verify-forwarding needs FORWARD_ALLOW_PRIVATE_TARGETS=true (its receiver is local).")
        receiver = forwarded.ForwardReceiver()
        receiver.start()
        forwarded.register(receiver)
        self.stdout.write(f"Forwarding to {receiver.url} (endpoint {receiver.endpoint.pk}, for this run).")
        return receiver

    def _verify_forwarding(self, world, receiver, timeout: float) -> None:
        expected = simulator.truth(world)
        read_state_orm(expected)  # every stored postback applied: its messages written
        left = forwarded.forward_everything(receiver.endpoint, timeout=max(timeout, 10.0))
        report = forwarded.compare_forwarded(expected, receiver, still_pending=left)
        self.stdout.write(f"Verify forwarding ({len(expected)} actions): {report.line()}")
        for line in report.differences[:MAX_DIFFERENCES_SHOWN]:
            self.stdout.write(f"  {line}")
        if not report.ok:
            raise CommandError(f"forwarding verification failed: {report.line()}")

    @staticmethod
    def _verify_via(choice: str, url: str, endpoint: str) -> str:
        if choice != "auto":
            return choice
        host = urlsplit(url).hostname or ""
        local = url == endpoint or host in LOOPBACK or host == urlsplit(settings.PUBLIC_URL).hostname
        return "orm" if local else "http"

    def _verify(self, world, via: str, options, url: str, token: str) -> None:
        expected = simulator.truth(world)
        if via == "orm":
            actual = read_state_orm(expected)
        else:
            parts = urlsplit(url)
            api_url = options["api_url"] or urlunsplit((parts.scheme, parts.netloc, reverse("api-actions"), "", ""))
            try:
                actual = read_state_http(api_url, token, options["header"], expected, timeout=options["timeout"])
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                raise CommandError(f"Could not read the receiver's state: {exc}") from exc
        report = compare(expected, actual)
        self.stdout.write(f"Verify ({via}, {len(expected)} actions): {report.line()}")
        for line in report.differences[:MAX_DIFFERENCES_SHOWN]:
            self.stdout.write(f"  {line}")
        if len(report.differences) > MAX_DIFFERENCES_SHOWN:
            self.stdout.write(f"  ... and {len(report.differences) - MAX_DIFFERENCES_SHOWN} more")
        if not report.ok:
            raise CommandError(f"verification failed: {report.line()}")
