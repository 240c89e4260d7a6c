"""Collections: an immutable base build plus the writes since (a write-ahead log searched exactly), with
metadata filters, compaction into a new build, and one interface that a second backend implements."""
