"""Turn a raw delivery into a normalised change: names to impact.com's vocabulary, values typed.

Pure Python (no Django), so it is easy to test alone. The publisher picks the
parameter *names* in impact.com's URL or body template; we accept impact.com's
macro names in any case and in snake_case (`ActionId` = `action_id` =
`actionid`) plus the aliases in `vocabulary.ALIASES`. Values: an empty value or an
unfilled macro (`{SubId1}`) is None; money is `Decimal`; dates are aware
datetimes (ISO 8601 with or without offset, naive = UTC, or epoch seconds).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from .vocabulary import DEFAULT_LOOKUP, FIELDS, IGNORED, Lifecycle, normalise_name

MAX_MONEY = Decimal("1000000000000")  # 10^12, far above any commission
MONEY_DECIMAL_PLACES = 6
MAX_TEXT_LENGTH = 255
MAX_PARAMETERS = 1000
MAX_EXTRA_VALUE_LENGTH = 2000
EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(2100, 1, 1, tzinfo=UTC)


class InvalidPayload(ValueError):
    """The payload cannot be understood; the message says precisely why."""


_UNFILLED_MACRO = re.compile(r"^\{[A-Za-z0-9_]+\}$")
# ASCII digits only: Python's \d and Decimal() also accept other scripts' digits.
_MONEY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_EPOCH = re.compile(r"^[0-9]{9,10}(\.[0-9]+)?$")
# "2026-11-20T14:03:11+02:00" sent unencoded in a query string arrives as "...T14:03:11 02:00".
_OFFSET_PLUS_AS_SPACE = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?) (\d{2}(:?\d{2})?)$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")  # ISO 4217
MAX_STATUS_LENGTH = 40  # Action.status holds 40


@dataclass
class Postback:
    """One normalised change, as impact.com reported it."""

    fields: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.fields.get(name)

    @property
    def action_id(self) -> str:
        return self.fields["action_id"]

    @property
    def changed_at(self) -> datetime | None:
        """The impact-side time of this change, where the payload says it."""
        return self.fields.get("update_date")

    def fingerprint(self) -> str:
        """Identifies the change: a retry of the same postback has the same one."""
        canonical = {name: _canonical_text(value) for name, value in sorted(self.fields.items()) if value is not None}
        raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()


def _canonical_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


# --- Reading raw deliveries ------------------------------------------------------


def read_pairs(query_string: str, body: bytes, content_type: str) -> list[tuple[str, str]]:
    """All (name, value) pairs of a delivery: query string first, then the body."""
    pairs = _query_pairs(query_string)
    if body.strip():
        pairs.extend(_body_pairs(body, content_type))
    if len(pairs) > MAX_PARAMETERS:
        raise InvalidPayload(f"too many parameters ({len(pairs)}; at most {MAX_PARAMETERS})")
    return pairs


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    if not query_string:
        return []
    try:
        # WSGI hands the query string over as latin-1 decoded bytes.
        text = query_string.encode("latin-1").decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeError as exc:
        raise InvalidPayload("query string is not valid UTF-8") from exc


def _body_pairs(body: bytes, content_type: str) -> list[tuple[str, str]]:
    media_type = content_type.split(";")[0].strip().lower()
    if not media_type:
        first = body.lstrip()[:1]
        media_type = {b"{": "application/json", b"<": "application/xml"}.get(first, "application/x-www-form-urlencoded")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidPayload("body is not valid UTF-8") from exc
    if media_type == "application/json" or media_type.endswith("+json"):
        return _json_pairs(text)
    if media_type in ("application/xml", "text/xml") or media_type.endswith("+xml"):
        return _xml_pairs(text)
    if media_type == "application/x-www-form-urlencoded":
        try:
            return parse_qsl(text, keep_blank_values=True, errors="strict")
        except UnicodeError as exc:
            raise InvalidPayload("form body is not valid UTF-8") from exc
    raise InvalidPayload(
        f"unsupported content type {media_type!r}; send a query string, "
        "application/json, application/xml or application/x-www-form-urlencoded"
    )


def _reject_constant(name: str) -> None:
    raise InvalidPayload(f"JSON body contains {name}, which is not a number impact.com sends")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidPayload(f"JSON body has the key {key!r} twice")
        seen[key] = value
    return seen


def _json_pairs(text: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except RecursionError as exc:
        raise InvalidPayload("JSON body is nested too deeply") from exc
    except InvalidPayload:
        raise
    except ValueError as exc:
        raise InvalidPayload(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidPayload(f"JSON body must be an object of parameters, not {type(data).__name__}")
    pairs = []
    for key, value in data.items():
        if not _is_encodable(key) or (isinstance(value, str) and not _is_encodable(value)):
            raise InvalidPayload(f"JSON body key or value {key[:40]!r} is not valid Unicode (a lone surrogate escape)")
        if value is None:
            pairs.append((key, ""))
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, (str, int, Decimal)):
            pairs.append((key, str(value)))
        else:
            # Nested objects are not part of impact.com's flat templates: keep them, flattened.
            pairs.append((key, json.dumps(value, default=str)[:MAX_EXTRA_VALUE_LENGTH]))
    return pairs


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _xml_pairs(text: str) -> list[tuple[str, str]]:
    try:
        root = ElementTree.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise InvalidPayload(f"XML body refused: {type(exc).__name__} (DTDs and entities are not accepted)") from exc
    except ElementTree.ParseError as exc:
        raise InvalidPayload(f"body is not valid XML: {exc}") from exc
    except RecursionError as exc:
        raise InvalidPayload("XML body is nested too deeply") from exc
    pairs = [(_local_name(key), value) for key, value in root.attrib.items()]
    for child in root:
        if len(child):
            raise InvalidPayload(f"XML element <{_local_name(child.tag)}> must hold text, not other elements")
        pairs.append((_local_name(child.tag), (child.text or "").strip()))
    return pairs


def _local_name(tag: str) -> str:
    """`{urn:example}ActionId` -> `ActionId`: a namespace does not change what a parameter means."""
    return tag.rsplit("}", 1)[-1]


# --- Normalising --------------------------------------------------------------------


def parse(
    query_string: str,
    body: bytes = b"",
    content_type: str = "",
    lookup: dict[str, str] = DEFAULT_LOOKUP,
) -> Postback:
    """Read and normalise one delivery; raises InvalidPayload with a precise reason."""
    return normalise(read_pairs(query_string, body, content_type), lookup)


def normalise(pairs: list[tuple[str, str]], lookup: dict[str, str] = DEFAULT_LOOKUP) -> Postback:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    extra: dict[str, str] = {}
    for name, raw in pairs:
        key = normalise_name(name)
        if key in IGNORED:
            continue
        canonical = lookup.get(key)
        if canonical is None:
            # Kept as text; NUL cannot be stored in PostgreSQL's text or jsonb.
            extra[escape_nul(name[:100])] = escape_nul(raw[:MAX_EXTRA_VALUE_LENGTH])
            continue
        value = _value(canonical, name, raw)
        if canonical in values and values[canonical] != value:
            if value is None:
                continue
            if values[canonical] is not None:
                raise InvalidPayload(f"{sources[canonical]!r} and {name!r} give different values for {canonical}")
        if value is not None or canonical not in values:
            values[canonical] = value
            sources[canonical] = name
    if not values.get("action_id"):
        raise InvalidPayload("ActionId is missing or empty (map a parameter to {ActionId} in the impact.com template)")
    return Postback(fields={k: v for k, v in values.items() if v is not None}, extra=extra)


def _value(canonical: str, name: str, raw: str) -> Any:
    text = raw.strip()
    if not text or _UNFILLED_MACRO.match(text):
        return None
    kind = FIELDS[canonical][1]
    if kind == "money":
        return parse_money(text, name)
    if kind == "date":
        return parse_date(text, name)
    if kind == "status":
        return _text(text.upper(), name, MAX_STATUS_LENGTH)
    if kind == "event_type":
        value = text.lower()
        if value not in Lifecycle.values:
            raise InvalidPayload(f"{name}={text!r} is not one of {', '.join(Lifecycle.values)}")
        return value
    if canonical in ("currency", "original_currency"):
        if not _CURRENCY.match(text):
            raise InvalidPayload(f"{name}={text[:40]!r} is not a currency code (three letters, e.g. USD)")
        return text.upper()
    return _text(text, name)


def escape_nul(text: str) -> str:
    """PostgreSQL's text and jsonb cannot hold NUL: stored text keeps it visible as \\x00."""
    return text.replace("\x00", "\\x00")


def _text(text: str, name: str, max_length: int = MAX_TEXT_LENGTH) -> str:
    if len(text) > max_length:
        raise InvalidPayload(f"{name} is {len(text)} characters long; at most {max_length}")
    if "\x00" in text:
        raise InvalidPayload(f"{name} contains a NUL character")
    return text


def parse_money(text: str, name: str = "value") -> Decimal:
    if not _MONEY.match(text):
        raise InvalidPayload(f"{name}={text[:40]!r} is not a decimal number (expected e.g. 12.34)")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes these
        raise InvalidPayload(f"{name}={text[:40]!r} is not a decimal number") from exc
    if abs(value) >= MAX_MONEY:
        raise InvalidPayload(f"{name}={text[:40]!r} is out of range (at most {MAX_MONEY:,} in absolute value)")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MONEY_DECIMAL_PLACES:
        value = value.normalize()
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > MONEY_DECIMAL_PLACES:
            raise InvalidPayload(f"{name}={text[:40]!r} has more than {MONEY_DECIMAL_PLACES} decimal places")
    return value + 0  # normalise -0 to 0


def parse_date(text: str, name: str = "value") -> datetime:
    """ISO 8601 with or without offset (naive means UTC), a bare date, or epoch seconds."""
    if _EPOCH.match(text):
        value = datetime.fromtimestamp(float(text), tz=UTC)
    else:
        if match := _OFFSET_PLUS_AS_SPACE.match(text):
            text = f"{match.group(1)}+{match.group(4)}"
        try:
            value = datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
        except ValueError:
            try:
                value = datetime.combine(date.fromisoformat(text), time())
            except ValueError as exc:
                raise InvalidPayload(
                    f"{name}={text[:40]!r} is not a date (expected ISO 8601 such as "
                    "2026-11-20T14:03:11-08:00, or epoch seconds)"
                ) from exc
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
    if not EARLIEST_DATE <= value < LATEST_DATE:
        raise InvalidPayload(f"{name}={text[:40]!r} is outside the years 1990-2099")
    return value
