"""Print how many inputs a property-test module tried, past pytest's output capture."""

from __future__ import annotations

from collections import Counter


def report(request, label: str, tried: Counter) -> None:
    detail = ", ".join(f"{kind} {n}" for kind, n in sorted(tried.items()))
    line = f"{label}: {sum(tried.values())} requests through the endpoint ({detail})"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)
