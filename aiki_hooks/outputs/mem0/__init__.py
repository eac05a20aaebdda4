"""mem0 delivery: the spool the refresher fills, and the short-lived helper that empties it into mem0."""
