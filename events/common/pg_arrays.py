r"""PostgreSQL arrays written as text with plain byte replacements instead of psycopg's regular
expression.

Django inserts many rows in one statement as one array per column (`INSERT … SELECT * FROM
UNNEST(%s::type[], …)`), and with client-side binding (Django's default) psycopg writes each array
as text, in Python. Its ListDumper escapes every quoted element with `re.sub(rb"\\\1", …)`:
a replacement template, so each `"` or `\` found costs a Python call. An event's JSON columns
(`changes`, `extra`) are full of quotes, and that escaping was about a tenth of the processor's
time per batch. `ListDumper` below writes the same bytes (tests compare it with psycopg's own) with
two `bytes.replace`; it is registered on every PostgreSQL connection Django opens.
"""

from __future__ import annotations

from psycopg.types import array


class ListDumper(array.ListDumper):
    """psycopg's text array dumper, its element escaping done without a regular expression."""

    def _dump_list(self, obj, tokens, needs_quotes) -> None:
        if not obj:
            tokens.append(b"{}")
            return
        dump = self.sub_dumper.dump if self.sub_dumper else self._dump_item
        tokens.append(b"{")
        for item in obj:
            if item is None:
                tokens.append(b"NULL")
            elif isinstance(item, list):
                self._dump_list(item, tokens, needs_quotes)
            elif (dumped := dump(item)) is None:
                tokens.append(b"NULL")
            else:
                if needs_quotes(dumped):
                    dumped = b'"' + bytes(dumped).replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
                tokens.append(dumped)
            tokens.append(self.delimiter)
        tokens[-1] = b"}"


def register(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: use ListDumper on Django's PostgreSQL connections."""
    if connection.vendor == "postgresql":
        connection.connection.adapters.register_dumper(list, ListDumper)
