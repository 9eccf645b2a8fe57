"""The Django project: settings, URLs, WSGI, gunicorn configuration, site-wide middleware."""
