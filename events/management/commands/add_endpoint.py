"""`manage.py add_endpoint`: a forwarding endpoint, its signing secret printed alone on the last line."""

from django.core.management.base import BaseCommand, CommandError

from events.models import KINDS, Brand, Endpoint


class Command(BaseCommand):
    help = "Add a forwarding endpoint; prints its signing secret (shown once) alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True)
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--kinds", default=",".join(KINDS), help=f"Comma-separated, among {', '.join(KINDS)} (default: all)."
        )
        parser.add_argument("--brand", default="", help="Only this brand's changes (its campaign id).")

    def handle(self, *args, url, description, kinds, brand, **options):
        wanted = [k.strip() for k in kinds.split(",") if k.strip()]
        unknown = sorted(set(wanted) - set(KINDS))
        if unknown or not wanted:
            raise CommandError(f"--kinds: unknown {', '.join(unknown) or 'empty'}; choose among {', '.join(KINDS)}")
        if not url.startswith(("https://", "http://")):
            raise CommandError("--url must be an http(s) URL")
        brand_row = None
        if brand:
            brand_row = Brand.objects.filter(campaign_id=brand).first()
            if brand_row is None:
                raise CommandError(f"--brand: no brand with campaign id {brand}")
        endpoint = Endpoint.objects.create(url=url, description=description, kinds=wanted, brand=brand_row)
        self.stdout.write(f"Endpoint {endpoint.pk} created for {url} ({', '.join(wanted)}). Its signing secret:")
        self.stdout.write(endpoint.secret)
