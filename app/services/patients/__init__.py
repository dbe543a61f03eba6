"""Patient records: search and registration with look-alike detection."""
