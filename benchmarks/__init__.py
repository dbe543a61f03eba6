"""Speed and scale benchmarks; ``python -m benchmarks`` runs them and writes a Markdown report."""
