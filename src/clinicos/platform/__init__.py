"""Technical plumbing shared by every context: database, observability, HTTP, outbox, backups."""
