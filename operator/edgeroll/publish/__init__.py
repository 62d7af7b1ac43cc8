"""S3 revision store: put-if-absent revisions, a manifest of history, retention."""
