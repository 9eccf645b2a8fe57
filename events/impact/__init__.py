"""The sender's world, with no models: impact.com's vocabulary, its promises, the postback parser
and the REST API client.

- `vocabulary`: the lifecycle words (`Lifecycle`), the Status words (`status_group`), macro names
  and their aliases, the templates.
- `promises`: how late is late (the one lateness rule).
- `postback`: a raw delivery to a normalised `Postback`, or `InvalidPayload` saying why not.
- `api`: the Mediapartners REST client used by reconciliation.
"""

from .postback import InvalidPayload, Postback, escape_nul, normalise, parse, parse_date, parse_money
from .vocabulary import (
    ALIASES,
    DEFAULT_LOOKUP,
    FIELDS,
    TEMPLATE_FIELDS,
    Lifecycle,
    build_lookup,
    json_body_template,
    normalise_name,
    status_group,
    url_template,
)

__all__ = [
    "ALIASES",
    "DEFAULT_LOOKUP",
    "FIELDS",
    "TEMPLATE_FIELDS",
    "InvalidPayload",
    "Lifecycle",
    "Postback",
    "build_lookup",
    "escape_nul",
    "json_body_template",
    "normalise",
    "normalise_name",
    "parse",
    "parse_date",
    "parse_money",
    "status_group",
    "url_template",
]
