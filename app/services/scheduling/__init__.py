"""The agenda: slots, booking, waiting list and offers, practice set-up, feeds, self-service."""
