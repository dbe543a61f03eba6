"""RGPD: a patient's data export and erasure."""
