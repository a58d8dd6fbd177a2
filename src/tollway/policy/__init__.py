"""Keys, teams, budgets and limits: what a caller may do and spend (see pipeline/policy.py)."""
