"""The time left shown for a running stage (issue 25, item 2: it swung between 9:40 and 16:59 within two
minutes): smoothed over the last three minutes of readings, with the range they span."""

from __future__ import annotations

import math

from splatstudio.model.eta import WINDOW, FinishEstimate, format_left


def test_a_swinging_estimate_is_smoothed_and_its_range_holds_the_truth():
    finish = 1500.0  # the stage really ends here
    estimate = FinishEstimate()
    shown, raw = [], []
    for now in range(0, 1200, 1):
        swing = 1.0 + 0.3 * math.sin(now / 20.0)  # the stage's own figure: ±30 % within a minute or two
        raw.append((finish - now) * swing)
        estimate.add(float(now), raw[-1])
        if now >= 180:
            shown.append((now, estimate.left(float(now))))
    for now, (middle, low, high) in shown:
        assert abs(middle - (finish - now)) <= 0.12 * (finish - now), (now, middle)
        assert low <= finish - now <= high, (now, low, high)
    raw_error = max(abs(left - (finish - now)) / (finish - now) for now, left in enumerate(raw) if now >= 180)
    assert raw_error > 0.25  # what the stage itself said was up to 30 % off


def test_few_readings_give_no_figure_and_a_quiet_stage_keeps_its_last_ones():
    estimate = FinishEstimate()
    estimate.add(0.0, 100.0)
    estimate.add(1.0, 99.0)
    assert estimate.left(1.0) is None
    estimate.add(2.0, 98.0)
    middle, low, high = estimate.left(2.0)
    assert 97 <= low <= middle <= high <= 99
    later = estimate.left(2.0 + 3 * WINDOW)  # no reading for minutes (one long matching block)
    assert later == (0.0, 0.0, 0.0)
    estimate.add(5.0, float("nan"))
    estimate.add(5.0, -3.0)
    assert len(estimate.readings) == 3


def test_the_figure_and_its_range_in_words():
    assert format_left(None) == ""
    assert format_left((750.0, 600.0, 900.0)) == "12:30 (10:00–15:00)"
    assert format_left((750.0, 740.0, 770.0)) == "12:30"  # narrow: the figure alone
    assert format_left((3725.0, 3700.0, 3750.0)) == "1:02:05"
