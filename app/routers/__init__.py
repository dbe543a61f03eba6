"""HTTP routes: thin faces over app/services."""
