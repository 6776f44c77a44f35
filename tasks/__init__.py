"""The pipeline's stages: plain functions that do the work, with thin Prefect task wrappers.

Their module loggers log at INFO; Prefect attaches its API handler to them (`extra_loggers = "tasks"` in
pyproject.toml), so these lines appear in the flow run's logs in the UI as well as on the console.
"""

import logging

logging.getLogger(__name__).setLevel(logging.INFO)
