"""Domain model: goals, threat model, findings, budgets, spec files."""
