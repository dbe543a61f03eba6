"""Foundations every layer may use: the settings. Imports nothing of the app."""
