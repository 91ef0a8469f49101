"""Assessment: the plan, the runner and the scoring of findings."""
