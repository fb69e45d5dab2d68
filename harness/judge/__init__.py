"""Deciding a release: the rollback policy, the judge of its triggers, and the soak's verdicts."""
