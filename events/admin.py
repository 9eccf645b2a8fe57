"""Django admin: credentials, the allow-list, maintenance windows, the impact.com account, and
read-only views of deliveries, actions, alerts and refusals (with replay)."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from events.forwarding import replay_message
from events.intake.credentials import is_header_name
from events.models import (
    Action,
    ActionEvent,
    AlertChange,
    AlertItem,
    AllowedNetwork,
    Attempt,
    Brand,
    Credential,
    DelayAlert,
    Delivery,
    Endpoint,
    ImpactAccount,
    MaintenanceWindow,
    Message,
    Notification,
    RefusalCounter,
    RefusedAttempt,
    generate_secret,
    hash_secret,
)
from events.processing import replay
from events.reporting import reports, rollups

MIN_SECRET_LENGTH = 16


class CredentialForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Paste the value agreed with impact.com support, or leave empty to have one generated "
        "(shown once). Only a keyed hash and its last 4 characters are stored. Leave empty when editing "
        "to keep the current secret.",
    )

    class Meta:
        model = Credential
        fields = ["label", "header_name", "secret", "active", "expires_at"]

    def clean_header_name(self):
        header_name = self.cleaned_data["header_name"].strip()
        if not is_header_name(header_name):
            raise forms.ValidationError("Not a valid HTTP header name (letters, digits, hyphens: X-Postback-Token).")
        return header_name

    def clean_secret(self):
        secret = self.cleaned_data["secret"]
        if secret and len(secret) < MIN_SECRET_LENGTH:
            raise forms.ValidationError(f"Use at least {MIN_SECRET_LENGTH} characters.")
        if secret and Credential.objects.exclude(pk=self.instance.pk).filter(secret_hash=hash_secret(secret)).exists():
            raise forms.ValidationError("This secret is already used by another credential; use a different one.")
        return secret


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CountedInOverviewAdmin(ReadOnlyAdmin):
    """Actions (with their events) and deliveries: the overview counted them in their days, so deleting
    one drops those counts (events/rollups.py)."""

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        rollups.forget()
        reports.forget()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        rollups.forget()
        reports.forget()


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["label", "header_name", "secret_hint", "active", "expires_at", "last_used_at", "uses"]
    list_filter = ["active"]
    readonly_fields = ["secret_hint", "created_at", "last_used_at", "uses"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_uses()

    @admin.display(description="use count", ordering="uses")
    def uses(self, obj):
        return obj.uses

    def save_model(self, request, obj, form, change):
        secret = form.cleaned_data.get("secret")
        generated = False
        if not secret and not change:
            secret, generated = generate_secret(), True
        if secret:
            obj.set_secret(secret)
        super().save_model(request, obj, form, change)
        if generated:
            messages.warning(
                request,
                format_html(
                    "New secret for {}: <code>{}</code>. Copy it now: it is not shown again. "
                    "Send it to impact.com support for the {} header.",
                    obj.label,
                    secret,
                    obj.header_name,
                ),
            )


@admin.action(description="Replay selected deliveries (applied ones stay applied)", permissions=["replay"])
def replay_deliveries(modeladmin, request, queryset):
    counts = replay(queryset.order_by("id"))
    summary = ", ".join(f"{outcome}: {n}" for outcome, n in sorted(counts.items())) or "nothing"
    modeladmin.message_user(request, f"Replayed {sum(counts.values())} deliveries ({summary}).")


@admin.register(Delivery)
class DeliveryAdmin(CountedInOverviewAdmin):
    list_display = ["id", "received_at", "method", "outcome", "action_id", "remote_addr", "reason"]
    list_filter = ["outcome", "received_at", "method"]
    search_fields = ["=action_id"]
    date_hierarchy = "received_at"
    actions = [replay_deliveries]
    readonly_fields = [f.name for f in Delivery._meta.fields if f.name != "body"] + ["body_text"]
    exclude = ["body"]
    list_select_related = []
    show_full_result_count = False

    def has_replay_permission(self, request):
        return request.user.has_perm("events.replay_delivery")


class ActionEventInline(admin.TabularInline):
    model = ActionEvent
    fk_name = "action"
    extra = 0
    can_delete = False
    fields = [
        "seq", "kind", "from_state", "to_state", "amount", "payout", "delta_payout", "changed_at",
        "received_at", "delay_seconds", "source", "superseded", "out_of_order", "anomaly", "changes",
    ]  # fmt: skip
    readonly_fields = fields
    ordering = ["seq"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Action)
class ActionAdmin(CountedInOverviewAdmin):
    list_display = ["action_id", "brand", "state", "status", "amount", "payout", "currency", "last_received_at"]
    list_filter = ["state", "brand"]
    search_fields = ["=action_id", "=oid"]
    list_select_related = ["brand"]
    inlines = [ActionEventInline]
    show_full_result_count = False


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    list_display = ["campaign_id", "name", "created_at"]
    search_fields = ["campaign_id", "name"]
    readonly_fields = ["campaign_id", "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(RefusedAttempt)
class RefusedAttemptAdmin(ReadOnlyAdmin):
    list_display = ["at", "reason", "remote_addr", "method", "path", "size"]
    list_filter = ["reason"]


@admin.register(RefusalCounter)
class RefusalCounterAdmin(ReadOnlyAdmin):
    list_display = ["reason", "count", "last_at"]


# --- Delay alerts -------------------------------------------------------------------------


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    list_display = ["starts_at", "ends_at", "note"]
    date_hierarchy = "starts_at"


class ImpactAccountForm(forms.ModelForm):
    token = forms.CharField(
        required=False,
        strip=True,
        label="Auth Token",
        widget=forms.PasswordInput(render_value=False),
        help_text="From impact.com: Settings > API. Never shown again; leave empty when editing to keep it.",
    )

    class Meta:
        model = ImpactAccount
        fields = ["label", "account_sid", "token", "active"]

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("token") and not (self.instance.pk and self.instance.auth_token):
            self.add_error("token", "The Auth Token is required.")
        return cleaned


@admin.register(ImpactAccount)
class ImpactAccountAdmin(admin.ModelAdmin):
    form = ImpactAccountForm
    list_display = ["label", "account_sid", "token_hint", "active", "last_reconciled_at", "budget_used", "last_error"]
    readonly_fields = [
        "token_hint", "synced_through", "last_reconciled_at", "last_result", "last_error",
        "budget_hour", "budget_used", "rate_remaining", "paused_until",
    ]  # fmt: skip

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("token"):
            obj.auth_token = form.cleaned_data["token"]
        super().save_model(request, obj, form, change)


class AlertItemInline(admin.TabularInline):
    model = AlertItem
    extra = 0
    can_delete = False
    fields = ["action_id", "change", "changed_at", "received_at", "delay_seconds", "backfilled_at"]
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


class AlertChangeInline(admin.TabularInline):
    model = AlertChange
    extra = 0
    can_delete = False
    fields = ["at", "from_status", "to_status", "user", "note"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DelayAlert)
class DelayAlertAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "status", "brand", "expected", "item_count", "opened_at", "resolved_at"]
    list_filter = ["status", "kind", "expected"]
    list_select_related = ["brand"]
    inlines = [AlertChangeInline, AlertItemInline]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "alert", "reason", "channel", "attempts", "sent_at", "next_attempt_at", "gave_up"]
    list_filter = ["channel", "reason", "gave_up"]
    list_select_related = ["alert__brand"]
    readonly_fields = ["alert", "reason", "channel", "created_at", "next_attempt_at", "attempts", "sent_at",
                       "gave_up", "last_error"]  # fmt: skip


@admin.register(AllowedNetwork)
class AllowedNetworkAdmin(admin.ModelAdmin):
    """The optional allow-list: with no active row every address may send postbacks."""

    list_display = ["cidr", "label", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["cidr", "label"]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """The signing secret is generated and shown once, on creation and on rotation; only its last
    characters afterwards."""

    list_display = ("url", "description", "active", "failing_since", "disabled_at", "secret_hint")
    readonly_fields = ("secret_hint", "failing_since", "disabled_at", "disabled_reason", "created_at")
    actions = ["rotate_secret", "end_rotation"]

    def save_model(self, request, obj, form, change):
        created = obj.pk is None
        super().save_model(request, obj, form, change)
        if created:
            self.message_user(request, f"Signing secret (shown once): {obj.secret}", messages.WARNING)

    @admin.action(description="Rotate the signing secret (the old one keeps signing until the rotation ends)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            self.message_user(request, f"{endpoint}: new secret (shown once): {endpoint.rotate_secret()}")

    @admin.action(description="End the rotation (only the new secret signs)")
    def end_rotation(self, request, queryset):
        for endpoint in queryset:
            endpoint.end_rotation()


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("msg_id", "endpoint", "type", "action", "seq", "status", "attempts", "next_attempt_at")
    list_filter = ("status", "type", "endpoint")
    search_fields = ("msg_id", "action__action_id")
    readonly_fields = [f.name for f in Message._meta.fields]
    list_select_related = ("endpoint", "action")
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send again (same webhook-id)", permissions=["replay"])
    def replay(self, request, queryset):
        for message in queryset:
            replay_message(message)
        self.message_user(request, f"{queryset.count()} messages will be sent again.")

    def has_replay_permission(self, request):
        return request.user.has_perm("events.replay_message")


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ("at", "endpoint", "message", "status_code", "latency_ms", "error")
    list_filter = ("endpoint", "success")
    readonly_fields = [f.name for f in Attempt._meta.fields]

    def has_add_permission(self, request):
        return False
