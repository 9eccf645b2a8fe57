"""Who may see what: login for every page, staff for the setup page, and for every action that
changes something, staff with the Django model permission it needs (granted in admin; superusers
have them all). Refusals are 403, not a redirect: the user is known, the action is not theirs."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

# What each change on the dashboard needs.
REPLAY = ("events.replay_delivery",)
ACKNOWLEDGE = ("events.acknowledge_delayalert",)  # and resolve
SEND_TEST_POSTBACK = ("events.add_credential",)  # it creates a short-lived credential
REMOVE_TEST_ACTION = ("events.delete_action", "events.delete_delivery")
REPLAY_MESSAGE = ("events.replay_message",)  # one forwarded message, or every failed one since a time
SEND_TEST_MESSAGE = ("events.send_test_message",)


def staff_required(view):
    """Logged in and staff, or 403."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can do this.")
        return view(request, *args, **kwargs)

    return wrapper


def permission_required(*perms: str):
    """Logged in, staff, and holding every one of `perms`, or 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not (request.user.is_staff and request.user.has_perms(perms)):
                raise PermissionDenied(f"This needs the permission {', '.join(perms)}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def can(user, perms: tuple[str, ...]) -> bool:
    """Whether the page should offer the change that needs `perms`."""
    return bool(user.is_staff and user.has_perms(perms))
