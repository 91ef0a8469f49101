"""The evaluation checks flag what they should and nothing else."""

from __future__ import annotations

from aisec.attacks.integrity.sanity import blackbox_beats_whitebox, curve_does_not_fall, unbounded_not_zero


def test_a_falling_curve_passes() -> None:
    assert curve_does_not_fall([0.05, 0.1, 0.2], [0.8, 0.4, 0.0]) == []
    assert curve_does_not_fall([0.2, 0.05, 0.1], [0.0, 0.8, 0.4]) == []  # order of the grid does not matter
    assert curve_does_not_fall([0.1], [0.5]) == []


def test_a_rising_curve_is_flagged_with_the_eps() -> None:
    flags = curve_does_not_fall([0.05, 0.1, 0.2], [0.5, 0.3, 0.45])
    assert len(flags) == 1 and "eps=0.1" in flags[0] and "eps=0.2" in flags[0] and "masking" in flags[0]


def test_a_flat_curve_is_flagged_but_a_curve_already_at_zero_is_not() -> None:
    assert curve_does_not_fall([0.05, 0.1, 0.2], [0.6, 0.6, 0.6])
    assert curve_does_not_fall([0.05, 0.1, 0.2], [0.0, 0.0, 0.0]) == []


def test_small_wiggles_within_tolerance_pass() -> None:
    assert curve_does_not_fall([0.05, 0.1, 0.2], [0.5, 0.505, 0.1]) == []
    assert curve_does_not_fall([0.05, 0.1, 0.2], [0.5, 0.505, 0.1], tol=0.001)


def test_unbounded_attack_must_reach_zero() -> None:
    assert unbounded_not_zero(1.0, 0.0) == []
    assert unbounded_not_zero(1.0, 0.005) == []
    (flag,) = unbounded_not_zero(1.0, 0.2)
    assert "20.0%" in flag and "eps=1" in flag


def test_black_box_beating_white_box_is_flagged() -> None:
    assert blackbox_beats_whitebox(0.4, 0.4) == []
    assert blackbox_beats_whitebox(0.4, 0.5) == []
    (flag,) = blackbox_beats_whitebox(0.4, 0.3, name="square")
    assert "square" in flag and "masking" in flag
