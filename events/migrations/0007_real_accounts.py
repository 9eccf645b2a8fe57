# This branch's schema changes (renumbered by the lead when merged).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0003_dashboard_rollups'),
    ]

    operations = [
        migrations.AddField(
            model_name='credential',
            name='simulated_history',
            field=models.BooleanField(default=False, editable=False, help_text='Made by simulate_postbacks for a history it backdates once sent (the demo): the delay alerts of its postbacks are judged after the backdating, not on arrival.'),
        ),
        migrations.AddIndex(
            model_name='action',
            index=models.Index(condition=models.Q(('state', 'reversed')), fields=['first_received_at'], name='action_reversed_first_seen'),
        ),
    ]
