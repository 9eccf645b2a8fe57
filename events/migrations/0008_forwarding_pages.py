# The forwarding pages' permissions, and an index for the failed messages of an endpoint.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0007_real_accounts'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='endpoint',
            options={'ordering': ['id'], 'permissions': [('send_test_message', 'Can send a test message to a forwarding endpoint')]},
        ),
        migrations.AlterModelOptions(
            name='message',
            options={'ordering': ['id'], 'permissions': [('replay_message', 'Can send forwarded messages again (dashboard and admin)')]},
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('status', 'failed')), fields=['endpoint', '-created_at'], name='message_failed'),
        ),
    ]
