"""Prompts as versioned files; each generated artifact stores the prompt id, version and hash."""
