"""A/B experiments on endpoints: variants, assignment, outcomes and their statistics (issue 13)."""
