"""events.impact: impact.com's vocabulary, read from query strings and JSON, form and XML bodies."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import impact
from events.impact import FIELDS, InvalidPayload, parse


def snake_case(macro: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", macro).lower()


def sample_value(kind: str) -> tuple[str, object]:
    return {
        "text": ("some value", "some value"),
        "money": ("12.34", Decimal("12.34")),
        "date": ("2026-11-20T14:03:11-08:00", datetime(2026, 11, 20, 22, 3, 11, tzinfo=UTC)),
        "status": ("approved", "APPROVED"),
        "event_type": ("Modified", "modified"),
    }[kind]


MACROS = [(canonical, macro, kind) for canonical, (macro, kind) in FIELDS.items() if canonical != "action_id"]


@pytest.mark.parametrize(("canonical", "macro", "kind"), MACROS, ids=[m for _, m, _ in MACROS])
@pytest.mark.parametrize("spelling", ["macro", "snake_case", "lowercase", "uppercase"])
def test_every_macro_is_understood_in_any_case_and_in_snake_case(canonical, macro, kind, spelling):
    name = {
        "macro": macro,
        "snake_case": snake_case(macro),
        "lowercase": macro.lower(),
        "uppercase": macro.upper(),
    }[spelling]
    raw, expected = ("usd", "USD") if canonical.endswith("currency") else sample_value(kind)
    postback = parse(urlencode({"ActionId": "A1", name: raw}))
    assert postback[canonical] == expected
    assert postback.extra == {}


@pytest.mark.parametrize("name", ["ActionId", "action_id", "actionid", "ACTIONID", "Action-Id", "action.id"])
def test_action_id_is_found_whatever_the_spelling(name):
    assert parse(urlencode({name: "19816.4958.1037"})).action_id == "19816.4958.1037"


def test_snake_case_helper_matches_the_documented_examples():
    assert snake_case("ActionId") == "action_id"
    assert snake_case("SubId1") == "sub_id1"


@pytest.mark.parametrize(
    ("alias", "canonical", "raw", "expected"),
    [
        ("status", "status", "pending", "PENDING"),
        ("state", "status", "Reversed", "REVERSED"),
        ("payout", "payout", "1.50", Decimal("1.50")),
        ("commission", "payout", "2", Decimal("2")),
        ("amount", "amount", "99.99", Decimal("99.99")),
        ("sale_amount", "amount", "99.99", Decimal("99.99")),
        ("revenue", "amount", "5", Decimal("5")),
        ("oid", "oid", "ORDER-7", "ORDER-7"),
        ("order_id", "oid", "ORDER-7", "ORDER-7"),
        ("orderId", "oid", "ORDER-7", "ORDER-7"),
        ("subid1", "sub_id1", "newsletter", "newsletter"),
        ("sub1", "sub_id1", "newsletter", "newsletter"),
        ("subid", "sub_id1", "newsletter", "newsletter"),
        ("sub2", "sub_id2", "x", "x"),
        ("click_id", "shared_id", "c-1", "c-1"),
        ("currency_code", "currency", "eur", "EUR"),
        ("brand", "campaign_name", "Acme", "Acme"),
        ("program_id", "campaign_id", "1001", "1001"),
        ("updated_at", "update_date", "2026-11-21T00:00:00Z", datetime(2026, 11, 21, tzinfo=UTC)),
        ("event", "event_type", "reversed", "reversed"),
    ],
)
def test_common_publisher_names_map_to_impact_fields(alias, canonical, raw, expected):
    assert parse(urlencode({"ActionId": "A1", alias: raw}))[canonical] == expected


def test_every_alias_points_at_a_known_field():
    assert set(impact.ALIASES.values()) <= set(FIELDS)


def test_a_configured_update_time_name_is_read_as_the_update_date():
    lookup = impact.build_lookup(["LastModified"])
    postback = parse("ActionId=A1&last_modified=2026-11-21T10:00:00Z", lookup=lookup)
    assert postback.changed_at == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert "last_modified" in parse("ActionId=A1&last_modified=x").extra


@pytest.mark.parametrize("value", ["{SubId1}", "", "   ", "{sub_id1}"])
def test_unfilled_macros_and_empty_values_are_none(value):
    postback = parse(urlencode({"ActionId": "A1", "SubId1": value, "Amount": "{Amount}"}))
    assert postback["sub_id1"] is None
    assert postback["amount"] is None
    assert "sub_id1" not in postback.fields


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.34", Decimal("12.34")),
        ("-5.00", Decimal("-5.00")),
        ("+7", Decimal("7")),
        ("0.000001", Decimal("0.000001")),
        ("1.5000000", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("-0", Decimal("0")),
        ("999999999999.99", Decimal("999999999999.99")),
    ],
)
def test_money_is_a_decimal(raw, expected):
    value = parse(urlencode({"ActionId": "A1", "Payout": raw}))["payout"]
    assert isinstance(value, Decimal)
    assert value == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12,34", "is not a decimal number"),
        ("1,234.56", "is not a decimal number"),
        ("$12", "is not a decimal number"),
        ("1e5", "is not a decimal number"),
        ("NaN", "is not a decimal number"),
        ("Infinity", "is not a decimal number"),
        ("0x10", "is not a decimal number"),
        ("١٢", "is not a decimal number"),
        ("12.34 USD", "is not a decimal number"),
        ("1000000000000", "is out of range"),
        ("-1000000000000.5", "is out of range"),
        ("0.0000001", "more than 6 decimal places"),
    ],
)
def test_bad_money_is_refused_with_a_precise_reason(raw, reason):
    with pytest.raises(InvalidPayload, match=re.escape(reason)) as excinfo:
        parse(urlencode({"ActionId": "A1", "Payout": raw}))
    assert "Payout=" in str(excinfo.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-20T14:03:11-08:00", datetime(2026, 11, 20, 22, 3, 11, tzinfo=UTC)),
        ("2026-11-20T14:03:11+02:00", datetime(2026, 11, 20, 12, 3, 11, tzinfo=UTC)),
        ("2026-11-20T14:03:11Z", datetime(2026, 11, 20, 14, 3, 11, tzinfo=UTC)),
        ("2026-11-20T14:03:11.250Z", datetime(2026, 11, 20, 14, 3, 11, 250000, tzinfo=UTC)),
        ("2026-11-20T14:03:11", datetime(2026, 11, 20, 14, 3, 11, tzinfo=UTC)),
        ("2026-11-20 14:03:11", datetime(2026, 11, 20, 14, 3, 11, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("1795701791", datetime(2026, 11, 26, 14, 3, 11, tzinfo=UTC)),
        ("1795701791.5", datetime(2026, 11, 26, 14, 3, 11, 500000, tzinfo=UTC)),
    ],
)
def test_dates_are_iso_8601_or_epoch_seconds_and_naive_means_utc(raw, expected):
    value = parse(urlencode({"ActionId": "A1", "CreationDate": raw}))["creation_date"]
    assert value == expected
    assert value.tzinfo is not None


def test_an_offset_whose_plus_sign_became_a_space_in_the_query_string_is_still_understood():
    # impact.com may not percent-encode macro values: "+02:00" then arrives as " 02:00".
    postback = parse("ActionId=A1&CreationDate=2026-11-20T14:03:11+02:00")
    assert postback["creation_date"] == datetime(2026, 11, 20, 14, 3, 11, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("yesterday", "is not a date"),
        ("20/11/2026", "is not a date"),
        ("2026-13-01", "is not a date"),
        ("2026-11-20T25:00:00", "is not a date"),
        ("1889-01-01", "outside the years"),
        ("2150-01-01T00:00:00Z", "outside the years"),
    ],
)
def test_bad_dates_are_refused_with_a_precise_reason(raw, reason):
    with pytest.raises(InvalidPayload, match=reason) as excinfo:
        parse(urlencode({"ActionId": "A1", "EventDate": raw}))
    assert "EventDate=" in str(excinfo.value)


def test_unknown_parameters_are_kept_in_extra():
    postback = parse("ActionId=A1&my_campaign=black-friday&Empty=")
    assert postback.extra == {"my_campaign": "black-friday", "Empty": ""}


def test_the_token_parameter_is_never_data():
    postback = parse("ActionId=A1&token=secret-value-1234567")
    assert "token" not in postback.extra
    assert "secret-value-1234567" not in json.dumps(postback.fields)


@pytest.mark.parametrize("query", ["Status=PENDING", "ActionId=", "ActionId={ActionId}", "action_id=%20"])
def test_a_missing_action_id_makes_the_payload_invalid(query):
    with pytest.raises(InvalidPayload, match="ActionId is missing"):
        parse(query)


@pytest.mark.parametrize("value", ["tracked", "MODIFIED", "Reversed"])
def test_an_explicit_event_type_is_read(value):
    assert parse(f"ActionId=A1&EventType={value}")["event_type"] == value.lower()


def test_an_unknown_event_type_is_refused():
    with pytest.raises(InvalidPayload, match="not one of tracked, modified, reversed"):
        parse("ActionId=A1&EventType=approved")


def test_two_names_for_the_same_field_must_agree():
    assert parse("ActionId=A1&action_id=A1").action_id == "A1"
    with pytest.raises(InvalidPayload, match="different values for action_id"):
        parse("ActionId=A1&action_id=A2")


def test_overlong_text_and_nul_characters_are_refused():
    with pytest.raises(InvalidPayload, match="at most 255"):
        parse(urlencode({"ActionId": "A1", "SubId1": "x" * 256}))
    with pytest.raises(InvalidPayload, match="NUL"):
        parse(urlencode({"ActionId": "A1\x00"}))


def test_a_status_longer_than_its_column_is_refused():
    assert parse(urlencode({"ActionId": "A1", "Status": "X" * 40}))
    with pytest.raises(InvalidPayload, match="at most 40"):
        parse(urlencode({"ActionId": "A1", "Status": "X" * 41}))


@pytest.mark.parametrize("name", ["Currency", "OriginalCurrency"])
@pytest.mark.parametrize("value", ["US", "USDX", "U$D", "12"])
def test_a_currency_must_be_a_three_letter_code(name, value):
    assert parse(urlencode({"ActionId": "A1", name: "usd"}))[name.replace("Original", "original_").lower()] == "USD"
    with pytest.raises(InvalidPayload, match="not a currency code"):
        parse(urlencode({"ActionId": "A1", name: value}))


def test_nul_characters_in_unknown_parameters_are_kept_escaped():
    postback = parse("ActionId=A1&note=a%00b")
    assert postback.extra == {"note": "a\\x00b"}


# --- Bodies ---------------------------------------------------------------------------


def test_a_json_body_is_read():
    body = json.dumps({"ActionId": "A1", "Amount": "10.50", "Payout": 1.25, "Count": 3, "Flag": True, "SubId1": None})
    postback = parse("", body.encode(), "application/json")
    assert postback.action_id == "A1"
    assert postback["amount"] == Decimal("10.50")
    assert postback["payout"] == Decimal("1.25")  # a JSON number is read as a Decimal, never a float
    assert postback["sub_id1"] is None
    assert postback.extra == {"Count": "3", "Flag": "true"}


def test_impacts_json_body_template_filled_in_is_read():
    filled = impact.json_body_template().replace("{ActionId}", "A9").replace("{Amount}", "20.00")
    postback = parse("", filled.encode(), "application/json; charset=utf-8")
    assert postback.action_id == "A9"
    assert postback["amount"] == Decimal("20.00")
    assert postback["payout"] is None  # still the unfilled {Payout} macro


def test_a_form_body_is_read():
    postback = parse("", b"action_id=A1&payout=3.00&status=approved", "application/x-www-form-urlencoded")
    assert (postback.action_id, postback["payout"], postback["status"]) == ("A1", Decimal("3.00"), "APPROVED")


def test_an_xml_body_is_read():
    body = b'<?xml version="1.0" encoding="UTF-8"?><Postback Status="APPROVED"><ActionId>A1</ActionId><Payout> 4.00 </Payout></Postback>'
    postback = parse("", body, "application/xml")
    assert (postback.action_id, postback["payout"], postback["status"]) == ("A1", Decimal("4.00"), "APPROVED")


def test_xml_namespaces_do_not_hide_parameter_names():
    body = b'<p:Postback xmlns:p="urn:x" xmlns="urn:y" p:Status="approved"><ActionId>A1</ActionId><p:Payout>1</p:Payout></p:Postback>'
    postback = parse("", body, "application/xml")
    assert (postback.action_id, postback["payout"], postback["status"]) == ("A1", Decimal("1"), "APPROVED")


def test_a_body_without_content_type_is_recognised_by_its_first_character():
    assert parse("", b'{"ActionId": "J"}', "").action_id == "J"
    assert parse("", b"<p><ActionId>X</ActionId></p>", "").action_id == "X"
    assert parse("", b"ActionId=F", "").action_id == "F"


def test_query_string_and_body_are_read_together():
    postback = parse("ActionId=A1", b'{"Payout": "2.00"}', "application/json")
    assert (postback.action_id, postback["payout"]) == ("A1", Decimal("2.00"))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<p><ActionId>&lol3;</ActionId></p>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<p><ActionId>&xxe;</ActionId></p>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["entity-expansion", "external-entity"])
def test_xml_entities_and_dtds_are_refused(body):
    with pytest.raises(InvalidPayload, match="DTDs and entities are not accepted"):
        parse("", body, "application/xml")


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json", "nested too deeply"),
        (b'{"ActionId": "A1", "Amount": NaN}', "application/json", "NaN"),
        (b'{"ActionId": "A1", "Amount": Infinity}', "application/json", "Infinity"),
        (b'{"ActionId": "A1", "Amount": -Infinity}', "application/json", "-Infinity"),
        (b'{"ActionId": "A1", "ActionId": "A2"}', "application/json", "key 'ActionId' twice"),
        (b'{"ActionId": "A1",}', "application/json", "not valid JSON"),
        (b'["ActionId", "A1"]', "application/json", "must be an object"),
        (b'"A1"', "application/json", "must be an object"),
        (b'{"ActionId": "A1", "n": ' + b"9" * 5000 + b"}", "application/json", "not valid JSON"),
        (b'{"ActionId": "\\ud800"}', "application/json", "not valid Unicode"),
        (b'{"ActionId": "A1", "\\udfff": "x"}', "application/json", "not valid Unicode"),
        (b'{"ActionId": "caf\xe9"}', "application/json", "not valid UTF-8"),
        (b"ActionId=caf\xe9", "application/x-www-form-urlencoded", "not valid UTF-8"),
        (b"ActionId=caf%E9", "application/x-www-form-urlencoded", "not valid UTF-8"),
        (b"<p><ActionId>A1</p>", "application/xml", "not valid XML"),
        (b"<p><ActionId><b>1</b></ActionId></p>", "application/xml", "must hold text"),
        (b"<p>" * 100_000 + b"</p>" * 100_000, "application/xml", "XML"),
        (b"ActionId=A1", "text/plain", "unsupported content type 'text/plain'"),
        (b"--x\r\n", "multipart/form-data; boundary=x", "unsupported content type"),
    ],
    ids=lambda v: v[:30] if isinstance(v, bytes) else None,
)
def test_unreadable_bodies_are_invalid_with_a_precise_reason(body, content_type, reason):
    with pytest.raises(InvalidPayload, match=re.escape(reason)):
        parse("", body, content_type)


@pytest.mark.parametrize("query", ["ActionId=caf%E9", "ActionId=A1&x=%FF%FE"])
def test_a_query_string_that_is_not_utf8_is_invalid(query):
    with pytest.raises(InvalidPayload, match="query string is not valid UTF-8"):
        parse(query)


def test_a_raw_non_ascii_query_string_from_wsgi_is_decoded_as_utf8():
    wsgi = "ActionId=café".encode().decode("latin-1")  # how WSGI hands it over
    assert parse(wsgi).action_id == "café"


def test_too_many_parameters_are_refused():
    with pytest.raises(InvalidPayload, match="too many parameters"):
        parse("&".join(f"p{i}=1" for i in range(1001)) + "&ActionId=A1")


def test_the_fingerprint_is_the_same_for_the_same_change_however_it_is_written():
    by_get = parse("ActionId=A1&Amount=10.0&Status=pending&CreationDate=2026-11-20T14:00:00-08:00")
    by_json = parse(
        "", b'{"action_id": "A1", "amount": 10, "status": "PENDING", "creation_date": "2026-11-20T22:00:00Z"}', ""
    )
    assert by_get.fingerprint() == by_json.fingerprint()
    assert parse("ActionId=A1&Amount=10.01").fingerprint() != by_get.fingerprint()


def test_the_url_template_names_every_recommended_macro_once():
    template = impact.url_template("https://postbacks.example.com/postbacks/impact/")
    assert template.startswith("https://postbacks.example.com/postbacks/impact/?ActionId={ActionId}&")
    for name in impact.TEMPLATE_FIELDS:
        macro = FIELDS[name][0]
        assert template.count(f"{macro}={{{macro}}}") == 1


# --- Properties -------------------------------------------------------------------------

names = st.one_of(
    st.sampled_from([macro for macro, _ in FIELDS.values()] + list(impact.ALIASES) + ["token"]),
    st.text(max_size=20),
)
values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["{SubId1}", "", "12.34", "-0", "1e3", "NaN", "2026-11-20T14:03:11-08:00", "1795701791"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.datetimes().map(lambda d: d.isoformat()),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | values,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, values), max_size=12))
def test_any_query_string_either_parses_or_is_invalid_payload(pairs):
    query = urlencode(pairs)
    try:
        postback = parse(query)
    except InvalidPayload:
        return
    assert postback.action_id
    postback.fingerprint()


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, json_values, max_size=12))
def test_any_json_body_either_parses_or_is_invalid_payload(data):
    body = json.dumps(data).encode()
    try:
        postback = parse("", body, "application/json")
    except InvalidPayload:
        return
    assert postback.action_id
    json.dumps(postback.extra).encode()
    postback.fingerprint()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["", "application/json", "application/xml", "text/xml", "text/plain"]))
def test_any_bytes_either_parse_or_are_invalid_payload(body, content_type):
    try:
        postback = parse("", body, content_type)
    except InvalidPayload:
        return
    assert postback.action_id
