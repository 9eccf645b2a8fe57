"""Pure helpers every other package may use: times and durations, currencies' minor units, network
addresses, log context.

No models and no other package of the project: this is the bottom layer with `impact`.
"""
