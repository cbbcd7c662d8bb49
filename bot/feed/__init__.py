"""The score feed: updates from indexers and files, through one path into the source of truth."""
