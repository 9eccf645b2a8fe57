"""django-filter FilterSets of the reports: the locking calendar and the performance by dimension.

Both filter ActionReport rows. Invalid values show an error beside their field and are ignored, so
the page still answers; a campaign id that is no brand's is such an error.
"""

from __future__ import annotations

import django_filters
from django import forms

from events.models import ActionReport, Brand
from events.reporting.report_queries import DIMENSIONS, PERFORMANCE_SORTS

from .filters import ISO_DATE, _day_bounds

MAX_TEXT = 255


class BrandFilterMixin(django_filters.FilterSet):
    """`brand` is a campaign id; `currency` a currency code as the postbacks sent it."""

    brand = django_filters.CharFilter(label="Brand (campaign ID)", method="filter_brand", max_length=MAX_TEXT)
    currency = django_filters.CharFilter(label="Currency", method="filter_currency", max_length=8)

    def filter_brand(self, queryset, name, value):
        brand = self.chosen_brand()
        return queryset.filter(brand=brand) if brand is not None else queryset

    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency=value.strip().upper())

    def chosen_brand(self) -> Brand | None:
        """The brand asked for, if it is one (else the field says so and nothing is filtered)."""
        if not hasattr(self, "_brand"):
            self._brand = None
            data = self.cleaned()
            campaign_id = (data.get("brand") or "").strip()
            if campaign_id:
                self._brand = Brand.objects.filter(campaign_id=campaign_id).first()
                if self._brand is None:
                    self.form.add_error("brand", f"No brand has the campaign ID “{campaign_id}”.")
        return self._brand

    def cleaned(self) -> dict:
        """The values that are valid (an invalid one is left out, its error shown)."""
        self.form.is_valid()
        return getattr(self.form, "cleaned_data", {})

    def chosen(self, name: str):
        value = self.cleaned().get(name) or ""
        value = value.strip() if isinstance(value, str) else value
        return value.upper() if name == "currency" and value else (value or None)


class LockingFilter(BrandFilterMixin):
    day = django_filters.DateFilter(
        label="Day",
        method="filter_day",
        widget=forms.DateInput(format="%Y-%m-%d", attrs=ISO_DATE),
        validators=_day_bounds(),
    )

    class Meta:
        model = ActionReport
        fields = ["brand", "currency", "day"]

    def filter_day(self, queryset, name, value):
        return queryset  # the view reads the day's actions (report_queries.locking_on)


SORT_LABELS = {
    "value": "value", "tracked": "actions tracked", "reversed": "reversed by now", "reversed_rate": "reversed share",
    "gained": "gained", "lost": "lost", "net": "net",
}  # fmt: skip
# A select as well as the column headers: a phone stacks each row and shows no header to click.
SORT_CHOICES = [(f"-{name}", f"{SORT_LABELS[name].capitalize()}, highest first") for name in PERFORMANCE_SORTS] + [
    (name, f"{SORT_LABELS[name].capitalize()}, lowest first") for name in PERFORMANCE_SORTS
]


class PerformanceFilter(BrandFilterMixin):
    by = django_filters.ChoiceFilter(
        label="By", choices=[(key, label) for key, (label, _) in DIMENSIONS.items()], method="keep", empty_label=None
    )
    sort = django_filters.ChoiceFilter(
        label="Sort, within each currency",
        choices=SORT_CHOICES,
        method="keep",
        empty_label="Actions tracked, most first",
    )
    value = django_filters.CharFilter(label="Value", method="keep", max_length=MAX_TEXT, widget=forms.HiddenInput)

    class Meta:
        model = ActionReport
        fields = ["by", "brand", "currency", "sort", "value"]

    def keep(self, queryset, name, value):
        return queryset  # read by the view: the dimension, the order and the drill-down

    def dimension(self) -> str:
        return self.cleaned().get("by") or "sub_id1"
