"""HTTP routes, grouped by concern."""
