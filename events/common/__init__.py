"""Pure helpers every other package may use: times and durations, currencies' minor units, network
addresses, log context, PostgreSQL arrays as text, the garbage collector of long-running processes.

No models and no other package of the project: this is the bottom layer with `impact`.
"""
