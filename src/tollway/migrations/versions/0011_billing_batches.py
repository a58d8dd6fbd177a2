"""billing_outbox rows hold a batch of events: event_ids (comma-separated; NULL: the row's own
event_id, as in rows written before this revision) and events (how many); an index on claim
(a sender marks its batch delivered or failed by it, in one statement) and one that covers a
sender's claim; delivered rows are deleted instead of kept.

The table is rebuilt so that the small columns a sender scans come before the large ones
(SQLite walks a row's overflow pages to reach a column stored after a large value), and
payload becomes binary: a batch's events, zlib-compressed.

Revision ID: 0011_billing_batches
Revises: 0010_signals
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
import zlib

import sqlalchemy as sa
from alembic import op

revision = "0011_billing_batches"
down_revision = "0010_signals"
branch_labels = None
depends_on = None

_SMALL = ("event_id", "sink", "state", "attempts", "next_attempt_at", "claim")


def upgrade() -> None:
    op.create_table(
        "billing_outbox_new",
        sa.Column("event_id", sa.String(120), nullable=False),
        sa.Column("sink", sa.String(40), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claim", sa.String(40), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("trace_id", sa.String(36), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("event_ids", sa.Text(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),  # zlib-compressed (old rows: plain JSON)
        sa.PrimaryKeyConstraint("event_id", name="pk_billing_outbox_new"),
    )
    cols = ", ".join((*_SMALL, "created_at", "trace_id", "last_error"))
    blob = "convert_to(payload, 'UTF8')" if op.get_bind().dialect.name == "postgresql" else "CAST(payload AS BLOB)"
    op.execute(f"INSERT INTO billing_outbox_new ({cols}, payload) SELECT {cols}, {blob} FROM billing_outbox "
               "WHERE state <> 'delivered'")
    op.drop_table("billing_outbox")
    op.rename_table("billing_outbox_new", "billing_outbox")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE billing_outbox RENAME CONSTRAINT pk_billing_outbox_new TO pk_billing_outbox")
    op.create_index("ix_billing_outbox_due", "billing_outbox",
                    ["sink", "state", "next_attempt_at", "events", "event_id"])
    op.create_index("ix_billing_outbox_claim", "billing_outbox", ["claim"])


def downgrade() -> None:
    """Back to one row an event (batches are taken apart)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT event_id, sink, state, attempts, next_attempt_at, claim, created_at, "
                                "trace_id, last_error, event_ids, payload FROM billing_outbox")).all()
    op.drop_table("billing_outbox")
    table = op.create_table(
        "billing_outbox",
        sa.Column("event_id", sa.String(120), nullable=False),
        sa.Column("sink", sa.String(40), nullable=False),
        sa.Column("trace_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claim", sa.String(40), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_billing_outbox"),
    )
    op.create_index("ix_billing_outbox_state", "billing_outbox", ["state", "next_attempt_at"])
    out = []
    for r in rows:
        ids = (r.event_ids or r.event_id).split(",")
        raw = bytes(r.payload)
        events = json.loads(b"[" + (raw if raw[:1] == b"{" else zlib.decompress(raw)) + b"]")
        cut = len(r.sink) + 1
        for eid, event in zip(ids, events, strict=True):
            out.append({"event_id": eid, "sink": r.sink, "trace_id": eid[:-cut], "created_at": r.created_at,
                        "state": r.state, "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                        "claim": r.claim, "last_error": r.last_error,
                        "payload": json.dumps(event, separators=(",", ":"))})
    if out:
        op.bulk_insert(table, out)
