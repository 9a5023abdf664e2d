"""login failures (the web login throttle, shared by every web worker)

Revision ID: c7e41d0a5b93
Revises: a2ce71282b3e
Create Date: 2026-11-22 19:05:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'c7e41d0a5b93'
down_revision: Union[str, None] = 'a2ce71282b3e'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_failed_at', ['failed_at'], unique=False)
        batch_op.create_index('ix_login_failures_key_failed_at', ['key', 'failed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_key_failed_at')
        batch_op.drop_index('ix_login_failures_failed_at')

    op.drop_table('login_failures')
