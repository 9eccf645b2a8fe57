"""The tables, one module per theme (app label `events`, table names unchanged), and their querysets.

- `deliveries`: credentials, the allow-list, refused attempts, stored deliveries.
- `actions`: brands, actions and their history (action events).
- `reconciliation`: the impact.com API account and the changes it reported.
- `alerts`: maintenance windows, delay alerts, their evidence, changes and notifications.
- `forwarding`: the publisher's endpoints, the outbox of messages to them, their attempts.
- `rollups`: the dashboard's cached figures of closed days.
- `reports`: one row per action for the reports, and their totals by status and locking day.
- `throttles`: attempts counted per key in fixed windows, the store of every throttle.
- `sql`: the few statements the ORM cannot write, behind named functions.
"""

from .actions import (
    COUNTS,
    MONEY,
    MONEY_FIELDS,
    TRACKED_FIELDS,
    Action,
    ActionEvent,
    Brand,
    EventSource,
)
from .alerts import (
    ACTIVE_STATUSES,
    AlertChange,
    AlertItem,
    AlertKind,
    AlertStatus,
    DelayAlert,
    MaintenanceWindow,
    Notification,
    NotificationChannel,
    NotificationReason,
    WatcherHeartbeat,
)
from .deliveries import (
    DEFAULT_HEADER,
    AllowedNetwork,
    Credential,
    CredentialHeader,
    Delivery,
    IncomingDelivery,
    Outcome,
    RefusalCounter,
    RefusalReason,
    RefusedAttempt,
    generate_secret,
    hash_secret,
)
from .forwarding import (
    KINDS,
    Attempt,
    Endpoint,
    Message,
    MessageStatus,
    MessageType,
    generate_signing_secret,
)
from .reconciliation import (
    ApiChange,
    ImpactAccount,
)
from .reports import (
    NO_LOCKING_DAY,
    ActionReport,
    DayTotal,
    DimensionTotal,
    ReportZone,
    StatusGroup,
    StatusTotal,
    TrackedTotal,
)
from .rollups import (
    OverviewRollup,
)
from .throttles import (
    RateWindow,
    parse_rate,
)

__all__ = [
    "ACTIVE_STATUSES",
    "COUNTS",
    "DEFAULT_HEADER",
    "KINDS",
    "MONEY",
    "MONEY_FIELDS",
    "NO_LOCKING_DAY",
    "TRACKED_FIELDS",
    "Action",
    "ActionEvent",
    "ActionReport",
    "AlertChange",
    "AlertItem",
    "AlertKind",
    "AlertStatus",
    "AllowedNetwork",
    "ApiChange",
    "Attempt",
    "Brand",
    "Credential",
    "CredentialHeader",
    "DayTotal",
    "DelayAlert",
    "Delivery",
    "DimensionTotal",
    "Endpoint",
    "EventSource",
    "ImpactAccount",
    "IncomingDelivery",
    "MaintenanceWindow",
    "Message",
    "MessageStatus",
    "MessageType",
    "Notification",
    "NotificationChannel",
    "NotificationReason",
    "Outcome",
    "OverviewRollup",
    "RateWindow",
    "RefusalCounter",
    "RefusalReason",
    "RefusedAttempt",
    "ReportZone",
    "StatusGroup",
    "StatusTotal",
    "TrackedTotal",
    "WatcherHeartbeat",
    "generate_secret",
    "generate_signing_secret",
    "hash_secret",
    "parse_rate",
]
