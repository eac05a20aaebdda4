"""Where each cycle's results go besides the cache: files, webhooks, Prometheus, and mem0 (through a durable spool)."""
