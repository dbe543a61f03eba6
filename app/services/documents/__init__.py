"""Generated documents: storage, physician review, letters, PDF, feedback."""
