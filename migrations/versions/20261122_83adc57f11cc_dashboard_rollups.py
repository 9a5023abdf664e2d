"""dashboard rollups and lift snapshots (merges the web, tracking and billing heads)

Revision ID: 83adc57f11cc
Revises: 9100820298ba, afadee544e03, c7e41d0a5b93
Create Date: 2026-11-22 19:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '83adc57f11cc'
down_revision: Union[str, Sequence[str], None] = ('9100820298ba', 'afadee544e03', 'c7e41d0a5b93')
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('merchant_day_rollups',
    sa.Column('merchant_id', BigId, nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('campaign_id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('gmv', BigId, nullable=False),
    sa.Column('commission', BigId, nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_day_rollups_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('merchant_id', 'day', 'campaign_id', 'kind', name=op.f('pk_merchant_day_rollups'))
    )
    op.create_table('rollup_cursors',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('changes_upto', BigId, nullable=False),
    sa.Column('entries_upto', BigId, nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_cursors'))
    )
    op.create_table('merchant_lift_snapshots',
    sa.Column('merchant_id', BigId, nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('window_seconds', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_lift_snapshots_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('merchant_id', 'period', name=op.f('pk_merchant_lift_snapshots'))
    )


def downgrade() -> None:
    op.drop_table('merchant_lift_snapshots')
    op.drop_table('rollup_cursors')
    op.drop_table('merchant_day_rollups')
