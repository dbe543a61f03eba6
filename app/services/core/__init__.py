"""The small core every domain uses: domain errors, the audit trail, link tokens."""
