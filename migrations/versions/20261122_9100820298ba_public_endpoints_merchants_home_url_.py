"""public endpoints: merchants.home_url, webhook_events

Revision ID: 9100820298ba
Revises: a2ce71282b3e
Create Date: 2026-11-22 18:39:38.847629
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '9100820298ba'
down_revision: Union[str, None] = 'a2ce71282b3e'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('webhook_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('event_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.CheckConstraint("kind IN ('receipt', 'inbound')", name=op.f('ck_webhook_events_kind_known')),
    sa.CheckConstraint("provider IN ('gateway', 'twilio')", name=op.f('ck_webhook_events_provider_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('provider', 'event_key', name=op.f('uq_webhook_events_provider_event_key'))
    )
    # A nullable column: SQLite adds it in place (no table rebuild under the foreign keys).
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('home_url', sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('home_url')
    op.drop_table('webhook_events')
