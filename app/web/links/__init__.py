"""Pages opened from a signed link: patients' forms and self-service, calendar feeds."""
