"""Property tests: whatever arrives at the real endpoint gets a precise answer.

Every request, however malformed, ends as one of:
- 200 with a stored delivery whose outcome is `applied` or `duplicate`, or `invalid` with a reason
  (never `failed`: that would be a bug in the pipeline, and never `received`: a silent stop);
- a precise 4xx with a JSON body: 413 (body too large) or 414 (query string too long).
Never a 500, never an exception out of the view (the test client re-raises them).

The number of inputs tried is printed at the end of the module ("bad input: N requests").
"""

from __future__ import annotations

import json
import os
from collections import Counter
from urllib.parse import urlencode

import pytest
from django.conf import settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from events.models import Delivery, Outcome
from events.processing import process_pending
from tests.conftest import ENDPOINT, postback_params
from tests.intake import inputs_tried

TRIED: Counter[str] = Counter()

PROPERTY = hsettings(
    max_examples=int(os.environ.get("BAD_INPUT_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)


@pytest.fixture(scope="module", autouse=True)
def _report_inputs_tried(request):
    yield
    inputs_tried.report(request, "bad input", TRIED)


@pytest.fixture
def post(client, credential):
    """Send raw bytes with the credential in its header; records the kind of input tried."""

    def _post(kind, *, query_string="", body=b"", content_type="application/octet-stream", method="POST"):
        TRIED[kind] += 1
        return client.generic(
            method,
            ENDPOINT,
            data=body,
            content_type=content_type,
            headers={credential.header_name: credential.secret},
            QUERY_STRING=query_string,
        )

    return _post


def assert_precise(response) -> Delivery | None:
    """The property: a stored, explained outcome or a precise 4xx."""
    assert response.status_code in (200, 413, 414), (response.status_code, response.content[:500])
    body = response.json()
    if response.status_code != 200:
        assert body["error"] in ("payload_too_large", "uri_too_long") and body["detail"]
        return None
    assert body["outcome"] == "received"  # acknowledged once stored; a processor applies it
    process_pending()
    delivery = Delivery.objects.get(pk=body["delivery"])
    assert delivery.outcome in (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.INVALID), (
        delivery.outcome,
        delivery.reason,
        delivery.traceback[-3000:],
    )
    if delivery.outcome == Outcome.INVALID:
        assert delivery.reason.strip()
    return delivery


# --- strategies ----------------------------------------------------------------------

known_names = st.sampled_from([*sorted(postback_params()), "UpdateDate", "DeltaAmount", "EventType", "SubId1", "token"])
odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "{ActionId}",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-0",
            "0x10",
            "9" * 40,
            "1" + "0" * 12,
            "999999999999.9999999",
            "12.3456789",
            "٣٤",  # Arabic-Indic digits
            "2099-12-31T23:59:59+14:00",
            "1990-01-01T00:00:00-12:00",
            "9999999999",
            "0000-00-00",
            "2026-02-30",
            "REVERSED",
            "reversed",
            "modified",
            "\x00",
            "a\x00b",
            "\ud7ff",
            "😀" * 10,
            "x" * 300,
        ]
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def mutated_postbacks(draw):
    """A valid postback with some values replaced, some keys added or dropped."""
    params = postback_params(action_id=draw(st.sampled_from(["A1", "A2", "B7"])))
    for name in draw(st.lists(known_names, max_size=4)):
        params[name] = draw(odd_text)
    for name in draw(st.lists(st.sampled_from(sorted(params)), max_size=2)):
        params.pop(name, None)
    pairs = list(params.items())
    pairs += draw(st.lists(st.tuples(st.text(max_size=15), odd_text), max_size=4))
    if draw(st.booleans()):
        # the same name twice, with different values
        name = draw(known_names)
        pairs += [(name, draw(odd_text)), (name.lower(), draw(odd_text))]
    return pairs


def _latin1(raw: bytes) -> str:
    """WSGI servers hand the query string over as bytes decoded as latin-1."""
    return raw.decode("latin-1")


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


# --- query strings -------------------------------------------------------------------


@PROPERTY
@given(raw=st.binary(max_size=300))
@example(raw=b"ActionId=%FF%FE&CampaignId=1")
@example(raw=b"ActionId=\xff\xfe")
@example(raw=b"ActionId=A1&ActionId=A2")
@example(raw=b"ActionId=A1&action_id=A1&ACTIONID=")
@example(raw=b"%%%&&&===;;;")
@example(raw=b"ActionId=A1&Amount=NaN")
@example(raw=b"ActionId=A1&Payout=Infinity")
@example(raw=b"ActionId=A1&Amount=1" + b"0" * 400)
def test_arbitrary_query_string_bytes(post, raw):
    assert_precise(post("query bytes", query_string=_latin1(raw), method="GET"))


@PROPERTY
@given(pairs=mutated_postbacks())
def test_mutated_postback_in_query_string(post, pairs):
    query = urlencode(pairs)
    assert_precise(post("query mutated", query_string=query, method="GET"))


def test_ten_thousand_query_parameters_are_an_invalid_delivery(post):
    query = "ActionId=A1&" + "&".join("p=v" for _ in range(10_000))
    assert len(query) < settings.POSTBACK_MAX_BODY_BYTES
    delivery = assert_precise(post("query 10k params", query_string=query, method="GET"))
    assert delivery.outcome == Outcome.INVALID
    assert "too many parameters" in delivery.reason


def test_a_one_megabyte_query_value_is_refused_with_414(post):
    response = post("query 1 MB value", query_string="ActionId=A1&SubId1=" + "x" * 1_000_000, method="GET")
    assert response.status_code == 414
    assert_precise(response)
    assert not Delivery.objects.exists()


# --- JSON bodies ---------------------------------------------------------------------


@PROPERTY
@given(data=json_values)
def test_arbitrary_json_documents(post, data):
    body = json.dumps(data, allow_nan=True).encode()
    assert_precise(post("json document", body=body, content_type="application/json"))


@PROPERTY
@given(pairs=mutated_postbacks(), extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_mutated_postback_as_json(post, pairs, extra):
    body = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    if extra:
        body = body[:-1] + ("," if pairs else "") + json.dumps(extra, allow_nan=True)[1:]
    assert_precise(post("json mutated", body=body.encode(), content_type="application/json"))


@PROPERTY
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/json", "", "app/x+json"]))
@example(raw=b'{"ActionId": "A1", "ActionId": "A1"}', content_type="application/json")
@example(raw=b'{"ActionId": "A1", "Amount": NaN}', content_type="application/json")
@example(raw=b'{"ActionId": "A1", "Amount": -Infinity}', content_type="application/json")
@example(raw=b'{"ActionId": "A1", "Amount": 1e999}', content_type="application/json")
@example(raw=b'{"ActionId": "A1", "Amount": 1' + b"0" * 5000 + b"}", content_type="application/json")
@example(raw=b'{"ActionId": "\xff"}', content_type="application/json")
@example(raw=b'{"ActionId": "\\ud800"}', content_type="application/json")
@example(raw=b'{"ActionId": "A\\u0000"}', content_type="application/json")
@example(raw=b'{"ActionId": "A1", "x\\u0000": "\\u0000"}', content_type="application/json")
@example(raw=b'\xef\xbb\xbf{"ActionId": "A1"}', content_type="application/json")
@example(raw=b"[]", content_type="application/json")
@example(raw=b"null", content_type="application/json")
def test_arbitrary_json_bytes(post, raw, content_type):
    assert_precise(post("json bytes", body=raw, content_type=content_type))


@pytest.mark.parametrize("depth", [100, 1_000, 30_000])
def test_deeply_nested_json_is_an_invalid_delivery_or_kept_flat(post, depth):
    body = ('{"ActionId": "A1", "x": ' + "[" * depth + "]" * depth + "}").encode()
    delivery = assert_precise(post("json deep nesting", body=body, content_type="application/json"))
    if depth >= 30_000:
        assert delivery.outcome == Outcome.INVALID
        assert "nested too deeply" in delivery.reason


def test_a_one_megabyte_json_value_is_refused_with_413(post):
    body = json.dumps({"ActionId": "A1", "SubId1": "x" * 1_000_000}).encode()
    response = post("json 1 MB value", body=body, content_type="application/json")
    assert response.status_code == 413
    assert_precise(response)


# --- form bodies ---------------------------------------------------------------------


@PROPERTY
@given(raw=st.binary(max_size=300))
@example(raw=b"ActionId=%FF")
@example(raw=b"ActionId=A1&ActionId=A2")
def test_arbitrary_form_bodies(post, raw):
    assert_precise(post("form bytes", body=raw, content_type="application/x-www-form-urlencoded"))


@PROPERTY
@given(pairs=mutated_postbacks())
def test_mutated_postback_as_form(post, pairs):
    body = urlencode(pairs).encode()
    assert_precise(post("form mutated", body=body, content_type="application/x-www-form-urlencoded; charset=utf-8"))


def test_ten_thousand_form_parameters_are_an_invalid_delivery(post):
    body = ("ActionId=A1&" + "&".join("p=" for _ in range(10_000))).encode()
    assert len(body) < settings.POSTBACK_MAX_BODY_BYTES
    delivery = assert_precise(post("form 10k params", body=body, content_type="application/x-www-form-urlencoded"))
    assert delivery.outcome == Outcome.INVALID
    assert "too many parameters" in delivery.reason


# --- XML bodies ----------------------------------------------------------------------

xml_names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,12}\Z")


@st.composite
def xml_documents(draw):
    pairs = draw(mutated_postbacks())
    children = []
    for name, value in pairs:
        tag = name if draw(st.booleans()) else draw(xml_names)
        text = value.replace("&", "&amp;").replace("<", "&lt;")
        children.append(f"<{tag}>{text}</{tag}>")
    if draw(st.booleans()):
        children.append("<nested><deeper>1</deeper></nested>")
    root = draw(xml_names)
    return f"<{root}>{''.join(children)}</{root}>"


@PROPERTY
@given(document=xml_documents(), content_type=st.sampled_from(["application/xml", "text/xml", ""]))
def test_generated_xml_documents(post, document, content_type):
    assert_precise(post("xml document", body=document.encode("utf-8", "surrogatepass"), content_type=content_type))


@PROPERTY
@given(raw=st.binary(max_size=300))
@example(raw=b"<postback><ActionId>\xff</ActionId></postback>")
@example(raw=b"<postback><ActionId>A1</ActionId><ActionId>A2</ActionId></postback>")
@example(raw=b'<postback ActionId="A1"><Amount>NaN</Amount></postback>')
@example(raw=b"<postback><ActionId>A&#0;</ActionId></postback>")
def test_arbitrary_xml_bytes(post, raw):
    assert_precise(post("xml bytes", body=raw, content_type="application/xml"))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<postback><ActionId>&lol3;</ActionId></postback>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><postback><ActionId>&xxe;</ActionId></postback>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["entity-expansion", "external-entity"])
def test_xml_entities_are_refused_not_expanded(post, document):
    delivery = assert_precise(post("xml entities", body=document, content_type="application/xml"))
    assert delivery.outcome == Outcome.INVALID
    assert "DTDs and entities are not accepted" in delivery.reason
    assert b"root:" not in bytes(delivery.body)


def test_deeply_nested_xml_is_an_invalid_delivery(post):
    depth = 8_000
    body = ("<a>" * depth + "</a>" * depth).encode()
    delivery = assert_precise(post("xml deep nesting", body=body, content_type="application/xml"))
    assert delivery.outcome == Outcome.INVALID


# --- anything else -------------------------------------------------------------------


@PROPERTY
@given(
    raw=st.binary(max_size=200),
    content_type=st.one_of(st.text(max_size=40), st.sampled_from(["multipart/form-data; boundary=x", "text/plain"])),
    method=st.sampled_from(["GET", "POST"]),
)
def test_any_content_type_and_method(post, raw, content_type, method):
    assert_precise(post("content types", body=raw, content_type=content_type, method=method))


@pytest.mark.parametrize("name", ["CreationDate", "UpdateDate"])
@pytest.mark.parametrize("value", ["2099-12-31T23:59:59+14:00", "1990-01-01T00:00:00-12:00", "4102444799"])
def test_extreme_change_times_are_stored_and_explained(post, name, value):
    query = urlencode(postback_params(**{name: value}))
    assert_precise(post("extreme dates", query_string=query, method="GET"))
