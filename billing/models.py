"""ORM models of the billing package (none yet: its issue has not landed)."""
