"""Steps that span domains, and the job handlers that run them in the background."""
