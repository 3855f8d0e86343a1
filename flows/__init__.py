"""Prefect flows: the entrypoints that ``prefect.yaml`` deploys and the CLI runs.

Importing the package sets two defaults for Prefect's temporary local server,
the one a flow call starts when ``PREFECT_API_URL`` is unset: a 120 s start-up
timeout (the 20 s default fails on a busy machine) and no telemetry (without
internet it logs an ERROR on every start). They are only defaults: a value in
the environment or a Prefect profile wins. They take effect when this package
is imported before ``prefect`` itself.
"""

import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
