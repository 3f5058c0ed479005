"""efvi."""
