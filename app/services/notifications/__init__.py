"""Patient notifications: outbox, planning, templates, consent, mail and SMS."""
