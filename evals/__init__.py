"""Evaluations of the model-driven features, run by ``accueil eval ...``."""
