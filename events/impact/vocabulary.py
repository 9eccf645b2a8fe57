"""impact.com's words: the lifecycle of an action, its macro names, the names publishers use for them.

The parameter *names* of a postback are the publisher's choice in impact.com's template; the
macro names (`ActionId`, `DeltaPayout`, ...) are impact.com's. `FIELDS` maps our canonical field
names to those macros, `ALIASES` the names publishers commonly choose, and `build_lookup()` folds
both (any case, `_`, `-` and `.` ignored) into one table for the parser.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from django.db import models


class Lifecycle(models.TextChoices):
    """What a change did to an action, and the state it leaves the action in (the same three words)."""

    TRACKED = "tracked", "Tracked"
    MODIFIED = "modified", "Modified"
    REVERSED = "reversed", "Reversed"


# impact.com's Status words (and those of its older Impact Radius API and of receivers in the wild),
# by what they mean for the money: pending, approved (kept), reversed (lost).
PENDING, APPROVED, REVERSED = "pending", "approved", "reversed"
STATUS_GROUPS: dict[str, str] = {
    "PENDING": PENDING,
    "DEFAULT": PENDING,
    "APPROVED": APPROVED,
    "LOCKED": APPROVED,
    "CLEARED": APPROVED,
    "PAID": APPROVED,
    "REVERSED": REVERSED,
    "REJECTED": REVERSED,
    "DECLINED": REVERSED,
}


def status_group(status: str | None) -> str:
    """`pending`, `approved` or `reversed` for a Status word in any case; `""` for a word not listed."""
    return STATUS_GROUPS.get((status or "").strip().upper(), "")


# Canonical field -> (impact.com macro name, kind). Kinds: text, money, date, status, event_type.
FIELDS: dict[str, tuple[str, str]] = {
    "action_id": ("ActionId", "text"),
    "campaign_id": ("CampaignId", "text"),
    "campaign_name": ("CampaignName", "text"),
    "action_tracker_id": ("ActionTrackerId", "text"),
    "action_tracker_name": ("ActionTrackerName", "text"),
    "media_partner_id": ("MediaPartnerId", "text"),
    "media_partner_name": ("MediaPartnerName", "text"),
    "action_type": ("ActionType", "text"),
    "referring_type": ("ReferringType", "text"),
    "status": ("Status", "status"),
    "status_detail": ("StatusDetail", "text"),
    "ad_id": ("AdId", "text"),
    "payout": ("Payout", "money"),
    "delta_payout": ("DeltaPayout", "money"),
    "intended_payout": ("IntendedPayout", "money"),
    "amount": ("Amount", "money"),
    "delta_amount": ("DeltaAmount", "money"),
    "intended_amount": ("IntendedAmount", "money"),
    "currency": ("Currency", "text"),
    "original_currency": ("OriginalCurrency", "text"),
    "original_amount": ("OriginalAmount", "money"),
    "event_date": ("EventDate", "date"),
    "creation_date": ("CreationDate", "date"),
    "locking_date": ("LockingDate", "date"),
    "referring_date": ("ReferringDate", "date"),
    "cleared_date": ("ClearedDate", "date"),
    "update_date": ("UpdateDate", "date"),
    "oid": ("Oid", "text"),
    "shared_id": ("SharedId", "text"),
    "sub_id1": ("SubId1", "text"),
    "sub_id2": ("SubId2", "text"),
    "sub_id3": ("SubId3", "text"),
    "promo_code": ("PromoCode", "text"),
    "event_code": ("EventCode", "text"),
    "referring_domain": ("ReferringDomain", "text"),
    "event_type": ("EventType", "event_type"),
}

# Common names publishers choose in their templates -> canonical field.
# Keys are compared after lower-casing and removing "_", "-" and ".".
ALIASES: dict[str, str] = {
    "id": "action_id",
    "conversionid": "action_id",
    "transactionid": "action_id",
    "txid": "action_id",
    "campaign": "campaign_id",
    "programid": "campaign_id",
    "brandid": "campaign_id",
    "advertiserid": "campaign_id",
    "brand": "campaign_name",
    "brandname": "campaign_name",
    "programname": "campaign_name",
    "advertiser": "campaign_name",
    "advertisername": "campaign_name",
    "trackerid": "action_tracker_id",
    "tracker": "action_tracker_name",
    "trackername": "action_tracker_name",
    "partnerid": "media_partner_id",
    "state": "status",
    "actionstatus": "status",
    "commission": "payout",
    "deltacommission": "delta_payout",
    "saleamount": "amount",
    "revenue": "amount",
    "deltarevenue": "delta_amount",
    "currencycode": "currency",
    "orderid": "oid",
    "order": "oid",
    "subid": "sub_id1",
    "sub1": "sub_id1",
    "sub2": "sub_id2",
    "sub3": "sub_id3",
    "clickid": "shared_id",
    "actiondate": "event_date",
    "createdat": "creation_date",
    "updatedat": "update_date",
    "updatetime": "update_date",
    "modifieddate": "update_date",
    "changedate": "update_date",
    "event": "event_type",
    "lifecycle": "event_type",
    "lifecycleevent": "event_type",
}

# Parameters that are never data: the credential fallback.
IGNORED = {"token"}


def normalise_name(name: str) -> str:
    # Every postback repeats the same thirty-odd names: a regex substitution for each was a tenth
    # of parsing. Only short names are remembered, as names are whatever a sender writes.
    return _normalised(name) if len(name) <= 64 else _normalise(name)


@lru_cache(maxsize=1024)
def _normalised(name: str) -> str:
    return _normalise(name)


def _normalise(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name).lower()


def build_lookup(update_time_fields: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Normalised parameter name -> canonical field."""
    lookup = {normalise_name(macro): canonical for canonical, (macro, _) in FIELDS.items()}
    lookup.update({normalise_name(canonical): canonical for canonical in FIELDS})
    lookup.update(ALIASES)
    for name in update_time_fields:
        lookup[normalise_name(name)] = "update_date"
    return lookup


DEFAULT_LOOKUP = build_lookup()


# The URL (or JSON body) template to paste into impact.com.
TEMPLATE_FIELDS = (
    "action_id",
    "campaign_id",
    "campaign_name",
    "action_tracker_id",
    "action_tracker_name",
    "status",
    "status_detail",
    "amount",
    "delta_amount",
    "payout",
    "delta_payout",
    "currency",
    "event_date",
    "creation_date",
    "locking_date",
    "oid",
    "sub_id1",
    "sub_id2",
    "sub_id3",
    "promo_code",
)


def url_template(endpoint_url: str) -> str:
    """The GET URL template to paste into impact.com (recommended)."""
    query = "&".join(f"{FIELDS[name][0]}={{{FIELDS[name][0]}}}" for name in TEMPLATE_FIELDS)
    return f"{endpoint_url}?{query}"


def json_body_template() -> str:
    """The POST body template (JSON) for accounts that prefer POST."""
    body = {FIELDS[name][0]: f"{{{FIELDS[name][0]}}}" for name in TEMPLATE_FIELDS}
    return json.dumps(body, indent=2)
