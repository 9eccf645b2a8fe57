# The columns processing writes get database defaults, so the endpoint can insert a delivery with
# only what it arrives with (IncomingDelivery, over the same table). PostgreSQL sets the defaults in
# place; SQLite rebuilds the table.

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0012_joined_entries_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='IncomingDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('method', models.CharField(max_length=10)),
                ('path', models.CharField(max_length=300)),
                ('query_string', models.TextField(blank=True, help_text='Credentials redacted.')),
                ('content_type', models.CharField(blank=True, max_length=200)),
                ('body', models.BinaryField(blank=True, default=b'', help_text='Credentials redacted.')),
                ('headers', models.JSONField(default=dict, help_text='Credentials redacted.')),
                ('remote_addr', models.CharField(blank=True, max_length=64)),
            ],
            options={
                'db_table': 'events_delivery',
                'managed': False,
            },
        ),
        migrations.AlterField(
            model_name='delivery',
            name='action_id',
            field=models.CharField(blank=True, db_default='', default='', help_text='The ActionId, once parsed.', max_length=255),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='attempts',
            field=models.PositiveIntegerField(db_default=0, default=0, help_text='Times processed (1 + replays).'),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='outcome',
            field=models.CharField(choices=[('received', 'Received (not processed yet)'), ('applied', 'Applied'), ('duplicate', 'Duplicate'), ('invalid', 'Invalid'), ('failed', 'Failed')], db_default='received', default='received', max_length=12),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='reason',
            field=models.TextField(blank=True, db_default='', default='', help_text='Why it is invalid or failed.'),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='traceback',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
    ]
