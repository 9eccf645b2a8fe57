# One change, one history entry: the fingerprint of the postback that joined an entry recorded from
# impact.com's API, and the few entries still waiting for one (renumbered by the lead when merged).
# No existing entry has been joined: nothing to migrate.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0008_forwarding_pages'),
    ]

    operations = [
        migrations.AddField(
            model_name='actionevent',
            name='postback_fingerprint',
            field=models.CharField(blank=True, help_text='The postback that joined this entry recorded from the API.', max_length=64, null=True),
        ),
        migrations.AddIndex(
            model_name='actionevent',
            index=models.Index(condition=models.Q(('delivery__isnull', True), ('source', 'api')), fields=['action'], name='event_api_awaiting'),
        ),
        migrations.AddConstraint(
            model_name='actionevent',
            constraint=models.UniqueConstraint(condition=models.Q(('postback_fingerprint__isnull', False)), fields=('postback_fingerprint',), name='event_postback_fingerprint_unique'),
        ),
    ]
