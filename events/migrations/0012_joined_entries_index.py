# The entries recorded from impact.com's API that their postback joined, by action: a processor reads
# them with the batch's awaiting ones, since another postback of the same change is a duplicate of one.
# Only joined entries are in it (few): other writes cost nothing.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0011_report_totals'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='actionevent',
            index=models.Index(condition=models.Q(('postback_fingerprint__isnull', False)), fields=['action'], name='event_api_joined'),
        ),
    ]
