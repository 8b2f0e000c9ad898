"""children in code order: each parent's foreign-key index gains the code

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Pages of children (a grid's micro-grids, a building's households, a household's members) are
read in code order. With the code in the foreign key's index they come in that order straight
from it: no sort, and no more rows read than the page holds (at a million households, a grid's
first ten micro-grids were otherwise found by walking the code index and skipping other grids').
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHILDREN = [
    ("subdistrict", "district_id"),
    ("community", "subdistrict_id"),
    ("grid", "community_id"),
    ("micro_grid", "grid_id"),
    ("building", "micro_grid_id"),
    ("household", "building_id"),
    ("person", "household_id"),
]


def upgrade() -> None:
    for table, parent in CHILDREN:
        op.drop_index(f"ix_{table}_{parent}", table_name=table)
        op.create_index(f"ix_{table}_{parent}", table, [parent, "code"])


def downgrade() -> None:
    for table, parent in CHILDREN:
        op.drop_index(f"ix_{table}_{parent}", table_name=table)
        op.create_index(f"ix_{table}_{parent}", table, [parent])
