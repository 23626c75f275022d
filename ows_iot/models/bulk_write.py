# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Batched column writes for the ingestion's hot path.

The ingestion updates hundreds of sessions, devices and event rows per commit, each
with its own values. A write() per record costs a few milliseconds; one UPDATE per
set of columns costs a fraction of that. Only untracked columns without business
logic in write() are written this way; the ORM is then told what changed, so stored
fields that depend on them are recomputed as usual.
"""

from collections import defaultdict

from odoo.tools import SQL

BATCH_SIZE = 1000


def write_rows(model, rows, computed=()):
    """Write ``{record id: {field name: value}}`` to ``model``'s table.

    Rows with the same fields share one ``UPDATE ... FROM (VALUES ...)``. Stored
    computed fields listed in ``computed`` and present in a row were computed by the
    caller: they are written as given, not recomputed.
    """
    if not rows:
        return
    env = model.env
    groups = defaultdict(list)
    for record_id, vals in rows.items():
        if vals:
            groups[tuple(sorted(vals))].append((record_id, vals))
    now, uid = env.cr.now(), env.uid
    touched = set()
    for fnames, items in groups.items():
        fields_ = [model._fields[fname] for fname in fnames]
        for start in range(0, len(items), BATCH_SIZE):
            chunk = items[start : start + BATCH_SIZE]
            flat = []
            for record_id, vals in chunk:
                record = model.browse(record_id)
                flat.append(record_id)
                flat.extend(field.convert_to_column(vals[field.name], record) for field in fields_)
            row = "(" + ", ".join(["%s"] * (len(fields_) + 1)) + ")"
            values = SQL(", ".join([row] * len(chunk)), *flat)
            assignments = SQL(", ").join(
                SQL(
                    "%s = __new.%s::%s",
                    SQL.identifier(field.name),
                    SQL.identifier(field.name),
                    SQL(field.column_type[1]),
                )
                for field in fields_
            )
            env.cr.execute(
                SQL(
                    "UPDATE %(table)s SET %(assignments)s, write_uid = %(uid)s, "
                    "write_date = %(now)s FROM (VALUES %(values)s) AS __new(id, %(columns)s) "
                    "WHERE %(table)s.id = __new.id",
                    table=SQL.identifier(model._table),
                    assignments=assignments,
                    uid=uid,
                    now=now,
                    values=values,
                    columns=SQL(", ").join(SQL.identifier(fname) for fname in fnames),
                )
            )
        records = model.browse([record_id for record_id, _vals in items])
        records.invalidate_recordset([*fnames, "write_uid", "write_date"])
        records.modified(fnames)
        for fname in set(fnames).intersection(computed):
            env.remove_to_compute(model._fields[fname], records)
        touched.update(fnames)
    return touched
