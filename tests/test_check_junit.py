"""The JUnit writer of edgeml check (edgeml.check.junit_xml)."""

from __future__ import annotations

import xml.etree.ElementTree as ET


# -- the JUnit writer (edgeml check --junit) -----------------------------------------------------------------------
def test_junit_xml_has_one_case_per_budget_and_failures_counted():
    from edgeml.check import CheckResult, Item, junit_xml

    result = CheckResult([Item("dir/m.tflite", "max_size", 1000, 1200, "bytes", False, "too big"),
                          Item("dir/m.tflite", "max_latency_ms (p50, host)", 5.0, 1.25, "ms", True)])
    root = ET.fromstring(junit_xml(result).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == ["edgeml.check.m.tflite"] * 2
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("message") == "measured 1.17 KiB vs limit 1000 B (measured)"
    assert "too big" in (failure.text or "")
    assert cases[1].find("failure") is None and "1.25 ms" in (cases[1].findtext("system-out") or "")
