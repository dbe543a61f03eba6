"""The task queue behind durable jobs: Huey carries "run job N" to the workers (the jobs
themselves, their handlers and their states are in ``app/jobs/store.py``)."""
