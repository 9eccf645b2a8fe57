# This branch's schema changes (renumbered by the lead when merged).

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0006_hardening'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='action',
            name='action_brand_sub_id1',
        ),
        migrations.AddField(
            model_name='credential',
            name='simulated_history',
            field=models.BooleanField(default=False, editable=False, help_text='Made by simulate_postbacks for a history it backdates once sent (the demo): the delay alerts of its postbacks are judged after the backdating, not on arrival.'),
        ),
        migrations.AddIndex(
            model_name='action',
            index=models.Index(models.F('brand'), django.db.models.functions.text.Upper('sub_id1'), models.F('id'), name='action_brand_sub_id1_ci'),
        ),
        migrations.AddIndex(
            model_name='action',
            index=models.Index(condition=models.Q(('state', 'reversed')), fields=['first_received_at'], name='action_reversed_first_seen'),
        ),
    ]
