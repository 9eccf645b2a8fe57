from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from events import impact
from events.models import Action, Credential, Delivery


@login_required
def overview(request):
    endpoint = settings.PUBLIC_URL + reverse("impact-postback")
    context = {
        "actions": Action.objects.count(),
        "deliveries": Delivery.objects.count(),
        "credentials": Credential.objects.usable().count(),
        "url_template": impact.url_template(endpoint),
    }
    return render(request, "dashboard/overview.html", context)
