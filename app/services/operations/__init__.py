"""Running the box: backup and restore, health, the demo practice."""
