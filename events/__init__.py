"""The domain: impact.com postbacks received, applied as action histories, watched for delays.

One package per capability, imports one way (see README, "How it is built"):
impact and common at the bottom, then models, lifecycle, reporting, alerts, processing, intake,
and simulation, admin and the management commands on top."""
