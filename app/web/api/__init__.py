"""JSON API routes that are not tied to one page."""
