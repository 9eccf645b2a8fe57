"""The OpenAPI description at /api/schema/, and schemathesis run against the real WSGI app with it.

Checks on every generated request (a valid credential injected): no 5xx, the status code, the
content type, the headers and the body conform to the description. Bounded: about 50 examples per
operation; the number of requests is printed ("schemathesis: N requests").
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis import checks

from postbacks_site.wsgi import application
from tests.intake import inputs_tried

CALLS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_requests(request):
    yield
    inputs_tried.report(request, "schemathesis", CALLS)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """schemathesis calls the WSGI app directly: like Django's test client, keep the request signals
    from closing the test transaction's connection (close_old_connections)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Loaded once at collection from the real app (building the description touches no database).
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


def test_the_schema_is_public_and_describes_the_endpoint(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    operations = document["paths"]["/postbacks/impact/"]
    assert set(operations) == {"get", "post"}
    for operation in operations.values():
        assert {"200", "401", "403", "405", "413", "414", "429", "503"} <= set(operation["responses"])
        assert operation["security"] == [{"credentialHeader": []}, {"credentialToken": []}]
        names = {p["name"] for p in operation["parameters"]}
        assert {"ActionId", "Status", "Payout", "DeltaPayout", "CreationDate", "UpdateDate"} <= names
    schemes = document["components"]["securitySchemes"]
    assert schemes["credentialHeader"] == {**schemes["credentialHeader"], "in": "header", "name": "X-Postback-Token"}
    assert schemes["credentialToken"] == {**schemes["credentialToken"], "in": "query", "name": "token"}
    assert set(operations["post"]["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "application/xml",
    }


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_endpoint_conforms_to_its_description(case, credential):
    CALLS[case.operation.method.upper()] += 1
    case.call_and_validate(
        headers={credential.header_name: credential.secret},
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_headers_conformance,
            checks.response_schema_conformance,
        ],
    )


def test_without_a_credential_the_described_401_comes_back(client, credential):
    """schemathesis injects the credential above; here the refusal path conforms too."""
    operation = schema["/postbacks/impact/"]["GET"]
    case = operation.Case(query={"ActionId": "A1"})
    CALLS["GET unauthenticated"] += 1
    response = case.call()
    assert response.status_code == 401
    case.validate_response(response)
