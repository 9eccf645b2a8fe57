"""Argument types shared by the management commands (argparse turns a ValueError into a usage error)."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value
