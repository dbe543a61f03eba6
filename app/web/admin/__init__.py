"""Administration pages (admin role)."""
