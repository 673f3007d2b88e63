"""Bulk pre-labelling: a project's tasks beyond one /predict's budget, predicted in chunks and stored
through Label Studio's API, by the service's background process or by RQ workers.

``budget`` (what /predict answers itself and what it hands on) -> ``jobs`` (start, watch, report,
cancel) -> ``ledger`` (who predicts which task, in MODEL_DIR) -> ``chunks`` (one chunk, top to
bottom) run by ``worker`` (the background process, or ``rq worker``).
"""

from .jobs import BulkJobs

__all__ = ["BulkJobs"]
