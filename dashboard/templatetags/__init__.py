"""Template tags of the dashboard, loaded as `{% load dashboard %}` (templatetags/dashboard.py)."""
