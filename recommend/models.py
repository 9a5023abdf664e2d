"""ORM models of the recommend package (none yet: its issue has not landed)."""
