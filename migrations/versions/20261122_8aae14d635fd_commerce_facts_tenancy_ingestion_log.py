"""commerce facts, tenancy, ingestion log

Revision ID: 8aae14d635fd
Revises: 
Create Date: 2026-11-22 16:23:33.216610
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '8aae14d635fd'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:

    op.create_table('merchants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(currency) = 3', name=op.f('ck_merchants_currency_iso')),
    sa.CheckConstraint('length(timezone) > 0', name=op.f('ck_merchants_timezone_set')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('public_id', name=op.f('uq_merchants_public_id')),
    sa.UniqueConstraint('slug', name=op.f('uq_merchants_slug'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lookup', sa.String(length=12), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_api_keys_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('lookup', name=op.f('uq_api_keys_lookup')),
    sa.UniqueConstraint('public_id', name=op.f('uq_api_keys_public_id'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('customers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('email_consent', sa.Enum('unknown', 'opted_in', 'opted_out', name='email_consent', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('email_consent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sms_consent', sa.Enum('unknown', 'opted_in', 'opted_out', name='sms_consent', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('sms_consent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_customers_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_customers_merchant_id_external_id')),
    sa.UniqueConstraint('merchant_id', 'id', name=op.f('uq_customers_merchant_id_id'))
    )
    op.create_table('ingest_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.CheckConstraint("source IN ('api', 'file', 'demo')", name=op.f('ck_ingest_batches_source_known')),
    sa.CheckConstraint("status IN ('accepted', 'rejected', 'partial', 'stopped')", name=op.f('ck_ingest_batches_status_known')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_ingest_batches_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_batches')),
    sa.UniqueConstraint('public_id', name=op.f('uq_ingest_batches_public_id'))
    )
    with op.batch_alter_table('ingest_batches', schema=None) as batch_op:
        batch_op.create_index('ix_ingest_batches_merchant_received', ['merchant_id', 'received_at'], unique=False)

    op.create_table('merchant_campaigns',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_campaigns_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_campaigns')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_merchant_campaigns_merchant_id_external_id')),
    sa.UniqueConstraint('merchant_id', 'id', name=op.f('uq_merchant_campaigns_merchant_id_id'))
    )
    op.create_table('products',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('category', sa.String(length=200), nullable=True),
    sa.Column('brand', sa.String(length=200), nullable=True),
    sa.Column('price', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=True),
    sa.Column('image_url', sa.String(length=2000), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('in_stock', sa.Boolean(), nullable=False),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('price >= 0', name=op.f('ck_products_price_nonneg')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_products_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_products_merchant_id_external_id')),
    sa.UniqueConstraint('merchant_id', 'id', name=op.f('uq_products_merchant_id_id'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('operator', 'merchant', 'finance', name='role', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(role = 'merchant' AND merchant_id IS NOT NULL) OR (role <> 'merchant' AND merchant_id IS NULL)", name=op.f('ck_users_merchant_role_binding')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_users_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('public_id', name=op.f('uq_users_public_id'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('carts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id', 'customer_id'], ['customers.merchant_id', 'customers.id'], name=op.f('fk_carts_merchant_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_carts_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carts')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_carts_merchant_id_external_id')),
    sa.UniqueConstraint('merchant_id', 'id', name=op.f('uq_carts_merchant_id_id'))
    )
    with op.batch_alter_table('carts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_carts_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_carts_merchant_updated', ['merchant_id', 'source_updated_at'], unique=False)

    op.create_table('consent_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.Enum('email', 'sms', name='consent_channel', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('action', sa.Enum('opt_in', 'opt_out', name='consent_action', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('keyword', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id', 'customer_id'], ['customers.merchant_id', 'customers.id'], name=op.f('fk_consent_events_merchant_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_consent_events_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_events')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_consent_events_merchant_id_external_id'))
    )
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.create_index('ix_consent_events_customer_channel', ['customer_id', 'channel', 'occurred_at'], unique=False)

    op.create_table('coupon_redemptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id', 'campaign_id'], ['merchant_campaigns.merchant_id', 'merchant_campaigns.id'], name=op.f('fk_coupon_redemptions_merchant_id_merchant_campaigns')),
    sa.ForeignKeyConstraint(['merchant_id', 'customer_id'], ['customers.merchant_id', 'customers.id'], name=op.f('fk_coupon_redemptions_merchant_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_coupon_redemptions_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_redemptions')),
    sa.UniqueConstraint('merchant_id', 'customer_id', 'campaign_id', 'code', 'redeemed_at', name=op.f('uq_coupon_redemptions_merchant_id_customer_id_campaign_id_code_redeemed_at'))
    )
    with op.batch_alter_table('coupon_redemptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coupon_redemptions_customer_id'), ['customer_id'], unique=False)

    op.create_table('merchant_campaign_targets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id', 'campaign_id'], ['merchant_campaigns.merchant_id', 'merchant_campaigns.id'], name=op.f('fk_merchant_campaign_targets_merchant_id_merchant_campaigns')),
    sa.ForeignKeyConstraint(['merchant_id', 'customer_id'], ['customers.merchant_id', 'customers.id'], name=op.f('fk_merchant_campaign_targets_merchant_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_campaign_targets_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_campaign_targets')),
    sa.UniqueConstraint('campaign_id', 'customer_id', name=op.f('uq_merchant_campaign_targets_campaign_id_customer_id'))
    )
    with op.batch_alter_table('merchant_campaign_targets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchant_campaign_targets_customer_id'), ['customer_id'], unique=False)

    op.create_table('merchant_coupons',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id', 'campaign_id'], ['merchant_campaigns.merchant_id', 'merchant_campaigns.id'], name=op.f('fk_merchant_coupons_merchant_id_merchant_campaigns')),
    sa.ForeignKeyConstraint(['merchant_id', 'product_id'], ['products.merchant_id', 'products.id'], name=op.f('fk_merchant_coupons_merchant_id_products')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_coupons_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_coupons')),
    sa.UniqueConstraint('campaign_id', 'code', 'product_id', name=op.f('uq_merchant_coupons_campaign_id_code_product_id'))
    )
    with op.batch_alter_table('merchant_coupons', schema=None) as batch_op:
        batch_op.create_index('ix_merchant_coupons_code', ['merchant_id', 'code'], unique=False)

    op.create_table('cart_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cart_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_cart_items_quantity_positive')),
    sa.CheckConstraint('unit_price >= 0', name=op.f('ck_cart_items_unit_price_nonneg')),
    sa.ForeignKeyConstraint(['merchant_id', 'cart_id'], ['carts.merchant_id', 'carts.id'], name=op.f('fk_cart_items_merchant_id_carts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merchant_id', 'product_id'], ['products.merchant_id', 'products.id'], name=op.f('fk_cart_items_merchant_id_products')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_cart_items_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cart_items')),
    sa.UniqueConstraint('cart_id', 'product_id', name=op.f('uq_cart_items_cart_id_product_id'))
    )
    op.create_table('orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cart_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payment_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('coupon_code', sa.String(length=64), nullable=True),
    sa.Column('merchandise_amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('discount_amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('shipping_amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tax_amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('discount_amount >= 0', name=op.f('ck_orders_discount_nonneg')),
    sa.CheckConstraint('merchandise_amount >= 0', name=op.f('ck_orders_merchandise_nonneg')),
    sa.CheckConstraint('refunded_amount = 0 OR paid_at IS NOT NULL', name=op.f('ck_orders_refunds_only_when_paid')),
    sa.CheckConstraint('refunded_amount >= 0 AND refunded_amount <= merchandise_amount', name=op.f('ck_orders_refunds_within_order')),
    sa.CheckConstraint('shipping_amount >= 0', name=op.f('ck_orders_shipping_nonneg')),
    sa.CheckConstraint('tax_amount >= 0', name=op.f('ck_orders_tax_nonneg')),
    sa.ForeignKeyConstraint(['merchant_id', 'cart_id'], ['carts.merchant_id', 'carts.id'], name=op.f('fk_orders_merchant_id_carts')),
    sa.ForeignKeyConstraint(['merchant_id', 'customer_id'], ['customers.merchant_id', 'customers.id'], name=op.f('fk_orders_merchant_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_orders_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_orders_merchant_id_external_id')),
    sa.UniqueConstraint('merchant_id', 'id', name=op.f('uq_orders_merchant_id_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_coupon_code'), ['coupon_code'], unique=False)
        batch_op.create_index('ix_orders_merchant_customer_placed', ['merchant_id', 'customer_id', 'placed_at'], unique=False)
        batch_op.create_index('ix_orders_merchant_paid', ['merchant_id', 'paid_at'], unique=False)

    op.create_table('order_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_order_lines_amount_nonneg')),
    sa.CheckConstraint('line_no >= 0', name=op.f('ck_order_lines_line_no_nonneg')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_order_lines_quantity_positive')),
    sa.CheckConstraint('unit_price >= 0', name=op.f('ck_order_lines_unit_price_nonneg')),
    sa.ForeignKeyConstraint(['merchant_id', 'order_id'], ['orders.merchant_id', 'orders.id'], name=op.f('fk_order_lines_merchant_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merchant_id', 'product_id'], ['products.merchant_id', 'products.id'], name=op.f('fk_order_lines_merchant_id_products')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_order_lines_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines')),
    sa.UniqueConstraint('order_id', 'line_no', name=op.f('uq_order_lines_order_id_line_no'))
    )
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.create_index('ix_order_lines_merchant_product', ['merchant_id', 'product_id'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['merchant_id', 'order_id'], ['orders.merchant_id', 'orders.id'], name=op.f('fk_refunds_merchant_id_orders')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_refunds_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_refunds_merchant_id_external_id'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_order_id'), ['order_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_order_id'))

    op.drop_table('refunds')
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_order_lines_merchant_product')

    op.drop_table('order_lines')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_merchant_paid')
        batch_op.drop_index('ix_orders_merchant_customer_placed')
        batch_op.drop_index(batch_op.f('ix_orders_coupon_code'))

    op.drop_table('orders')
    op.drop_table('cart_items')
    with op.batch_alter_table('merchant_coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_merchant_coupons_code')

    op.drop_table('merchant_coupons')
    with op.batch_alter_table('merchant_campaign_targets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchant_campaign_targets_customer_id'))

    op.drop_table('merchant_campaign_targets')
    with op.batch_alter_table('coupon_redemptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coupon_redemptions_customer_id'))

    op.drop_table('coupon_redemptions')
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_events_customer_channel')

    op.drop_table('consent_events')
    with op.batch_alter_table('carts', schema=None) as batch_op:
        batch_op.drop_index('ix_carts_merchant_updated')
        batch_op.drop_index(batch_op.f('ix_carts_customer_id'))

    op.drop_table('carts')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_merchant_id'))

    op.drop_table('users')
    op.drop_table('products')
    op.drop_table('merchant_campaigns')
    with op.batch_alter_table('ingest_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_ingest_batches_merchant_received')

    op.drop_table('ingest_batches')
    op.drop_table('customers')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_merchant_id'))

    op.drop_table('api_keys')
    op.drop_table('merchants')

