"""ORM models of the attribution package (none yet: its issue has not landed)."""
