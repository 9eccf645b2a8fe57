"""One module per command; each has its --help."""
