"""The alert tests' impact.com: a local server speaking its REST API, with an account to read it."""

import pytest
from fake_impact import SID, TOKEN, FakeImpact

from events.models import ImpactAccount


@pytest.fixture
def impact(settings, db):
    with FakeImpact() as fake:
        settings.IMPACT_API_BASE_URL = fake.base_url
        settings.IMPACT_API_ALLOW_HTTP = True
        fake.account = ImpactAccount.objects.create(account_sid=SID, auth_token=TOKEN)
        yield fake
