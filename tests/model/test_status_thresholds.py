import pytest

from aiki_hooks.model.status import Status, worst
from aiki_hooks.model import severity
from aiki_hooks.model.thresholds import Threshold, fmt_percent, judge


@pytest.mark.parametrize(
    "statuses, expected",
    [
        pytest.param([], Status.OK, id="empty-is-ok"),
        pytest.param([Status.OK, Status.UNKNOWN], Status.UNKNOWN, id="unknown-beats-ok"),
        pytest.param([Status.UNKNOWN, Status.WARNING], Status.WARNING, id="warning-beats-unknown"),
        pytest.param([Status.CRITICAL, Status.UNKNOWN, Status.WARNING], Status.CRITICAL, id="critical-wins"),
    ],
)
def test_worst_orders_ok_unknown_warning_critical(statuses, expected):
    assert worst(statuses) is expected


def test_status_severity_is_the_plain_order_the_hooks_use():
    by_severity = sorted(Status, key=lambda status: status.severity)
    assert [status.name for status in by_severity] == list(severity.ORDER) == ["OK", "UNKNOWN", "WARNING", "CRITICAL"]
    assert [severity.rank(status.name) for status in by_severity] == [0, 1, 2, 3]
    assert severity.rank("BOGUS") == 0 and severity.rank(None, default=3) == 3
    assert set(severity.ANSI_COLORS) == set(severity.ORDER)


def test_status_values_are_nagios_exit_codes():
    assert [int(s) for s in (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN)] == [0, 1, 2, 3]
    assert Status.parse("critical") is Status.CRITICAL
    with pytest.raises(ValueError):
        Status.parse("bad")


HIGH = Threshold(warn=90, crit=95)
LOW = Threshold(warn=5, crit=1, higher_is_worse=False)


@pytest.mark.parametrize(
    "threshold, value, expected",
    [
        pytest.param(HIGH, 89.9, Status.OK, id="high-below-warn"),
        pytest.param(HIGH, 90, Status.WARNING, id="high-at-warn"),
        pytest.param(HIGH, 95, Status.CRITICAL, id="high-at-crit"),
        pytest.param(LOW, 5.1, Status.OK, id="low-above-warn"),
        pytest.param(LOW, 4, Status.WARNING, id="low-below-warn"),
        pytest.param(LOW, 0.5, Status.CRITICAL, id="low-below-crit"),
        pytest.param(Threshold(warn=None, crit=50), 60, Status.CRITICAL, id="warn-disabled"),
        pytest.param(Threshold(warn=None, crit=None), 1e9, Status.OK, id="all-disabled"),
    ],
)
def test_threshold_evaluate(threshold, value, expected):
    assert threshold.evaluate(value) is expected


def test_judge_explains_the_crossed_level():
    assert judge(91, HIGH, fmt_percent) == (Status.WARNING, "warn at 90%")
    assert judge(96, HIGH, fmt_percent) == (Status.CRITICAL, "crit at 95%")
    assert judge(10, HIGH, fmt_percent) == (Status.OK, "")
