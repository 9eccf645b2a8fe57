"""django-filter FilterSets for the brand timeline, the deliveries log and the refused attempts.

Date filters are whole days in the display time zone. Invalid values show an error
beside their field and are ignored, so the page still answers.
"""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms

from events.common.times import day_start
from events.impact import Lifecycle
from events.models import Action, ActionEvent, Delivery, Outcome, RefusalReason, RefusedAttempt

from .labels import field_label


class CheckboxFilter(django_filters.BooleanFilter):
    field_class = forms.BooleanField


# Dates are typed and shown as YYYY-MM-DD, like every date on the pages (a browser's date picker
# shows the visitor's locale instead, e.g. 11/16/2026).
ISO_DATE = {"placeholder": "YYYY-MM-DD", "pattern": r"\d{4}-\d{2}-\d{2}", "inputmode": "numeric", "maxlength": "10"}


class DayRangeMixin(django_filters.FilterSet):
    date_from = django_filters.DateFilter(
        label="From", method="filter_from", widget=forms.DateInput(format="%Y-%m-%d", attrs=ISO_DATE)
    )
    date_to = django_filters.DateFilter(
        label="To", method="filter_to", widget=forms.DateInput(format="%Y-%m-%d", attrs=ISO_DATE)
    )
    time_field = "received_at"

    def __init__(self, *args, tz, **kwargs):
        self.tz = tz
        super().__init__(*args, **kwargs)

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


class NumberInFilter(django_filters.BaseInFilter, django_filters.NumberFilter):
    pass


class DeliveryFilter(DayRangeMixin):
    outcome = django_filters.ChoiceFilter(choices=Outcome.choices, empty_label="Any outcome")
    action_id = django_filters.CharFilter(label=field_label("action_id"), method="filter_action_id")
    ids = NumberInFilter(field_name="id", label="Delivery IDs")

    class Meta:
        model = Delivery
        fields = ["date_from", "date_to", "outcome", "action_id", "ids"]

    def filter_action_id(self, queryset, name, value):
        return queryset.filter(action_id=value.strip())


class RefusedFilter(DayRangeMixin):
    time_field = "at"
    reason = django_filters.ChoiceFilter(
        choices=RefusalReason.choices,
        empty_label="Any reason",
    )

    class Meta:
        model = RefusedAttempt
        fields = ["date_from", "date_to", "reason"]
