"""A simulated impact.com: a reproducible world of actions, its delivery plan with impact.com's
faults, an HTTP sender with impact.com's retry policy, and verification against the receiver.

- `world`: the world and the plan, pure Python.
- `sender`: plays a plan over real HTTP.
- `verify`: reads what the receiver stored and compares it with the truth.
- `demo`: backdates a demo's history so the pages show a month.
- `synthetic`: the setup page's test postback, through the real endpoint.
"""
