"""The recommender's pages (operator console)."""
