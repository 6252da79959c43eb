"""Drop three indexes that composite ones already cover, each of which every write of a sync
record or event had to maintain (docs/performance.md).

- syncrecord.connection_id: `sync_record_log`, `sync_record_state`, `sync_record_posted` and
  `sync_record_unique_key` all lead with it;
- syncrecord.document_id: `sync_record_one_per_operation` leads with it;
- syncevent.record_id: `sync_event_timeline` leads with it.

The database side is plain DROP INDEX (the names are Django's, the same on PostgreSQL and
SQLite): altering the fields would make SQLite rebuild both tables, and with them lose the
append-only triggers on sync events.
"""

from django.db import migrations, models
from django.db.models import deletion

DROPPED = [
    ("syncengine_syncrecord_connection_id_d5348369", "syncengine_syncrecord", "connection_id"),
    ("syncengine_syncrecord_document_id_04443dfe", "syncengine_syncrecord", "document_id"),
    ("syncengine_syncevent_record_id_074dcfad", "syncengine_syncevent", "record_id"),
]


class Migration(migrations.Migration):
    dependencies = [("syncengine", "0021_backfill_lease")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
                )
                for name, table, column in DROPPED
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="syncrecord",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=deletion.PROTECT,
                        related_name="records",
                        to="syncengine.connection",
                    ),
                ),
                migrations.AlterField(
                    model_name="syncrecord",
                    name="document",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=deletion.PROTECT,
                        related_name="records",
                        to="syncengine.sourcedocument",
                    ),
                ),
                migrations.AlterField(
                    model_name="syncevent",
                    name="record",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=deletion.PROTECT,
                        related_name="events",
                        to="syncengine.syncrecord",
                    ),
                ),
            ],
        )
    ]
