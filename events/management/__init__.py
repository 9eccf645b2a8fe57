"""manage.py commands of the events app."""
