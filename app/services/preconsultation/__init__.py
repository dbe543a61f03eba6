"""Pre-consultation: questionnaires, patient links, red-flag rules, summaries."""
