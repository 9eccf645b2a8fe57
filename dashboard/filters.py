"""django-filter FilterSets for the brand timeline, the deliveries log and the refused attempts.

Date filters are whole days in the display time zone, between FIRST_DAY and LAST_DAY and at most
MAX_RANGE_DAYS apart (a start alone runs to today). Invalid values show an error beside their
field and are ignored, so the page still answers.
"""

from __future__ import annotations

import re
from datetime import timedelta

import django_filters
from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from events.common.times import FIRST_DAY, LAST_DAY, day_range_problem, day_start
from events.impact import Lifecycle
from events.models import Action, ActionEvent, Delivery, Outcome, RefusalReason, RefusedAttempt

from .labels import field_label


class CheckboxFilter(django_filters.BooleanFilter):
    field_class = forms.BooleanField


MAX_ID = 2**63 - 1  # a bigint
_ID = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """A row id as a request may give one (ASCII digits, within a bigint), or None."""
    text = text.strip()
    if not _ID.fullmatch(text) or int(text) > MAX_ID:
        return None
    return int(text)


class IdListField(forms.CharField):
    """Comma-separated row ids, at most MAX_IDS of them."""

    MAX_IDS = 500

    def clean(self, value):
        parts = [part for part in (super().clean(value) or "").split(",") if part.strip()]
        ids = [parse_id(part) for part in parts]
        if None in ids:
            raise forms.ValidationError("Give delivery ids as numbers, comma-separated.")
        if len(ids) > self.MAX_IDS:
            raise forms.ValidationError(f"At most {self.MAX_IDS} ids.")
        return ids


def _day_bounds():
    message = f"Dates run from {FIRST_DAY:%Y-%m-%d} to {LAST_DAY:%Y-%m-%d}."
    return [MinValueValidator(FIRST_DAY, message), MaxValueValidator(LAST_DAY, message)]


class DayRangeForm(forms.Form):
    """The chosen days must make a range (see the module docstring): the error goes beside the
    start date and neither date filters."""

    tz = None

    def clean(self):
        data = super().clean()
        first, last = data.get("date_from"), data.get("date_to")
        today = timezone.localdate(timezone=self.tz)
        problem = day_range_problem(first, last or (today if first and first <= today else None))
        if problem:
            self.add_error("date_from" if first else "date_to", f"{problem[0].upper()}{problem[1:]}.")
            data.pop("date_from", None)
            data.pop("date_to", None)
        return data


# Dates are typed and shown as YYYY-MM-DD, like every date on the pages (a browser's date picker
# shows the visitor's locale instead, e.g. 11/16/2026).
ISO_DATE = {"placeholder": "YYYY-MM-DD", "pattern": r"\d{4}-\d{2}-\d{2}", "inputmode": "numeric", "maxlength": "10"}


class DayRangeMixin(django_filters.FilterSet):
    date_from = django_filters.DateFilter(
        label="From",
        method="filter_from",
        widget=forms.DateInput(format="%Y-%m-%d", attrs=ISO_DATE),
        validators=_day_bounds(),
    )
    date_to = django_filters.DateFilter(
        label="To",
        method="filter_to",
        widget=forms.DateInput(format="%Y-%m-%d", attrs=ISO_DATE),
        validators=_day_bounds(),
    )
    time_field = "received_at"

    def __init__(self, *args, tz, **kwargs):
        self.tz = tz
        super().__init__(*args, **kwargs)

    @property
    def form(self):
        form = super().form
        form.tz = self.tz
        return form

    def filter_from(self, queryset, name, value):
        return queryset.filter(**{f"{self.time_field}__gte": day_start(value, self.tz)})

    def filter_to(self, queryset, name, value):
        return queryset.filter(**{f"{self.time_field}__lt": day_start(value + timedelta(days=1), self.tz)})

    def day_range(self):
        """(start, end) of the chosen dates as aware datetimes; None where not chosen or invalid."""
        data = self.form.cleaned_data if self.form.is_valid() else {}
        first, last = data.get("date_from"), data.get("date_to")
        start = day_start(first, self.tz) if first else None
        end = day_start(last + timedelta(days=1), self.tz) if last else None
        return start, end


class TimelineFilter(DayRangeMixin):
    kind = django_filters.ChoiceFilter(choices=Lifecycle.choices, empty_label="Any kind")
    state = django_filters.ChoiceFilter(
        field_name="to_state", label="State after", choices=Lifecycle.choices, empty_label="Any state"
    )
    late = CheckboxFilter(label="Late only", method="filter_late", required=False)
    tracker = django_filters.CharFilter(label=field_label("action_tracker_id"), method="filter_tracker")
    sub_id = django_filters.CharFilter(label=field_label("sub_id1"), method="filter_sub_id")
    q = django_filters.CharFilter(label="Action or order ID", method="filter_q")

    class Meta:
        model = ActionEvent
        form = DayRangeForm
        fields = ["date_from", "date_to", "kind", "state", "late", "tracker", "sub_id", "q"]

    def __init__(self, *args, brand, **kwargs):
        self.brand = brand
        super().__init__(*args, **kwargs)

    def filter_late(self, queryset, name, value):
        return queryset.late() if value else queryset

    # Tracker and sub id live on the action. Joined (the join the page's rows need anyway), PostgreSQL
    # expects what it finds, one event in a few, and the page stops reading after its fifty rows.
    def filter_tracker(self, queryset, name, value):
        return queryset.filter(action__action_tracker_id=value.strip())

    def filter_sub_id(self, queryset, name, value):
        return queryset.with_sub_id1(value.strip())  # whatever the case: "Blog" finds "blog"

    def filter_q(self, queryset, name, value):
        """The ActionId whatever the case, or a part of the order id ("9246735" finds "ORD-9246735")."""
        return queryset.filter(action__in=Action.objects.for_brand(self.brand).matching(value.strip()).values("id"))

    @property
    def chart_qs(self):
        """The filtered events for the chart, which reads every one in its range. With a tracker or sub id
        filter the brand is stated on the joined action too: PostgreSQL then hashes the brand's matching
        actions (action_brand_tracker or action_brand_sub_id1, index only) instead of looking up the action
        of every event. Not for the page's rows: with it PostgreSQL expects fifty times fewer matches than
        there are, and reads the whole range before sorting."""
        data = getattr(self.form, "cleaned_data", {})
        if data.get("tracker") or data.get("sub_id"):
            return self.qs.filter(action__brand=self.brand)
        return self.qs


class IdsFilter(django_filters.Filter):
    field_class = IdListField


class DeliveryFilter(DayRangeMixin):
    outcome = django_filters.ChoiceFilter(choices=Outcome.choices, empty_label="Any outcome")
    action_id = django_filters.CharFilter(label=field_label("action_id"), method="filter_action_id")
    ids = IdsFilter(field_name="id", lookup_expr="in", label="Delivery IDs")

    class Meta:
        model = Delivery
        form = DayRangeForm
        fields = ["date_from", "date_to", "outcome", "action_id", "ids"]

    def filter_action_id(self, queryset, name, value):
        return queryset.filter(action_id=value.strip())

    def filter_queryset(self, queryset):
        # Ids that cannot be ids (the replay's link, edited) select nothing rather than everything.
        if "ids" in self.form.errors:
            return queryset.none()
        return super().filter_queryset(queryset)


class RefusedFilter(DayRangeMixin):
    time_field = "at"
    reason = django_filters.ChoiceFilter(
        choices=RefusalReason.choices,
        empty_label="Any reason",
    )

    class Meta:
        model = RefusedAttempt
        form = DayRangeForm
        fields = ["date_from", "date_to", "reason"]
