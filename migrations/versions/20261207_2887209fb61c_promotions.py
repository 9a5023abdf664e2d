"""promotions: the merchant's planned promotions per product (a ranker feature)

Revision ID: 2887209fb61c
Revises: e7739c0532d0
Create Date: 2026-12-07 03:53:10
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '2887209fb61c'
down_revision: Union[str, None] = 'e7739c0532d0'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('promotions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.Enum('display', 'mailer', 'discount', name='promotion_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reach_bp', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('planned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_promotions_period_positive')),
    sa.CheckConstraint('reach_bp > 0 AND reach_bp <= 10000', name=op.f('ck_promotions_reach_bp_range')),
    sa.ForeignKeyConstraint(['merchant_id', 'product_id'], ['products.merchant_id', 'products.id'], name=op.f('fk_promotions_merchant_id_products')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_promotions_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promotions')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_promotions_merchant_id_external_id'))
    )
    with op.batch_alter_table('promotions', schema=None) as batch_op:
        batch_op.create_index('ix_promotions_merchant_period', ['merchant_id', 'ends_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('promotions', schema=None) as batch_op:
        batch_op.drop_index('ix_promotions_merchant_period')

    op.drop_table('promotions')
