"""Pages and JSON routes for the practice staff (secretaries, physicians)."""
