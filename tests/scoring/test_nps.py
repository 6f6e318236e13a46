"""The NPS arithmetic of scoring/nps.py, checked against values worked out by hand. No database."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.nps import (
    DETRACTOR,
    PASSIVE,
    PROMOTER,
    Z_95,
    NpsChange,
    NpsCounts,
    category,
    recovery_rate,
    response_rate,
)

# --- Categories -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0, DETRACTOR),
        (6, DETRACTOR),
        (7, PASSIVE),
        (8, PASSIVE),
        (9, PROMOTER),
        (10, PROMOTER),
    ],
)
def test_category_boundaries_follow_the_0_6_7_8_9_10_split(score, expected):
    assert category(score) == expected


@pytest.mark.parametrize("bad", [-1, 11, 3.5, True, False, "9", None])
def test_category_rejects_anything_but_a_whole_number_from_0_to_10(bad):
    with pytest.raises(ValueError, match="whole number from 0 to 10"):
        category(bad)


def test_counts_from_scores_tallies_each_category():
    counts = NpsCounts.from_scores([10, 9, 9, 8, 7, 6, 0])
    assert (counts.promoters, counts.passives, counts.detractors, counts.n) == (3, 2, 2, 7)


def test_counts_from_scores_rejects_a_bad_score_in_the_list():
    with pytest.raises(ValueError):
        NpsCounts.from_scores([10, 11])


# --- A single set of responses --------------------------------------------------------------


def test_an_empty_set_has_no_nps_standard_error_or_margin():
    counts = NpsCounts()
    assert counts.n == 0
    assert counts.nps is None
    assert counts.standard_error is None
    assert counts.margin_of_error is None
    assert counts.promoter_share is None


def test_one_promoter_is_nps_100_with_no_spread():
    counts = NpsCounts.from_scores([9])
    assert counts.nps == 100
    # p = 1, d = 0: p + d - (p - d)^2 = 1 - 1 = 0, so the standard error is 0.
    assert counts.standard_error == 0
    assert counts.margin_of_error == 0


def test_one_detractor_is_nps_minus_100():
    assert NpsCounts.from_scores([0]).nps == -100


def test_all_passives_is_nps_0_not_no_responses():
    counts = NpsCounts(passives=12)
    assert counts.nps == 0
    # p = d = 0: the variance term is 0.
    assert counts.margin_of_error == 0


def test_all_detractors_is_nps_minus_100():
    counts = NpsCounts(detractors=5)
    assert counts.nps == -100
    assert counts.margin_of_error == 0


def test_all_promoters_is_nps_100():
    counts = NpsCounts(promoters=40)
    assert counts.nps == 100
    assert counts.margin_of_error == 0


def test_the_worked_example_10_9_9_8_7_6_0():
    counts = NpsCounts.from_scores([10, 9, 9, 8, 7, 6, 0])
    # 3 promoters (10, 9, 9), 2 passives (8, 7), 2 detractors (6, 0), n = 7.
    # NPS = 100 * (3 - 2) / 7 = 100 / 7 = 14.2857...
    assert round(counts.nps, 2) == 14.29
    assert counts.nps == pytest.approx(14.2857, abs=1e-4)
    # p = 3/7, d = 2/7
    # p + d       = 5/7  = 35/49
    # (p - d)^2   = (1/7)^2 = 1/49
    # variance    = 35/49 - 1/49 = 34/49 = 0.693878
    # se          = 100 * sqrt((34/49) / 7) = 100 * sqrt(34/343) = 100 * sqrt(0.0991254)
    #             = 100 * 0.314842 = 31.4842
    # margin      = 1.96 * 31.4842 = 61.7090
    assert counts.promoter_share == pytest.approx(3 / 7)
    assert counts.detractor_share == pytest.approx(2 / 7)
    assert counts.passive_share == pytest.approx(2 / 7)
    assert counts.standard_error == pytest.approx(31.4842, abs=1e-4)
    assert counts.margin_of_error == pytest.approx(61.7090, abs=1e-4)


def test_as_dict_carries_every_figure():
    assert NpsCounts(promoters=1, detractors=1).as_dict() == {
        "n": 2,
        "promoters": 1,
        "passives": 0,
        "detractors": 1,
        "nps": 0.0,
        # p = d = 1/2: variance = 1 - 0 = 1, se = 100 * sqrt(1/2) = 70.7107
        "standard_error": pytest.approx(70.7107, abs=1e-4),
        "margin_of_error": pytest.approx(1.96 * 70.7107, abs=1e-3),
    }


# --- The change between two waves -----------------------------------------------------------


def test_a_40_point_rise_on_200_responses_each_is_significant():
    before = NpsCounts(promoters=60, passives=60, detractors=80)  # 100 * (60 - 80) / 200 = -10
    after = NpsCounts(promoters=100, passives=60, detractors=40)  # 100 * (100 - 40) / 200 = +30
    change = NpsChange(before=before, after=after)
    assert before.nps == -10
    assert after.nps == 30
    assert change.delta == 40
    # before: p = .3, d = .4: variance = .7 - .01 = .69; se^2 = 100^2 * .69 / 200 = 34.5
    # after:  p = .5, d = .2: variance = .7 - .09 = .61; se^2 = 100^2 * .61 / 200 = 30.5
    # se of the difference = sqrt(34.5 + 30.5) = sqrt(65) = 8.0623; 1.96 * 8.0623 = 15.80 < 40
    assert change.standard_error == pytest.approx(8.0623, abs=1e-4)
    assert change.is_significant is True


def test_a_10_point_rise_on_20_responses_each_is_within_noise():
    before = NpsCounts(promoters=6, passives=8, detractors=6)  # NPS 0
    after = NpsCounts(promoters=7, passives=8, detractors=5)  # 100 * 2 / 20 = +10
    change = NpsChange(before=before, after=after)
    assert change.delta == pytest.approx(10)
    # before: p = d = .3: variance = .6; se^2 = 10000 * .6 / 20 = 300
    # after: p = .35, d = .25: variance = .6 - .01 = .59; se^2 = 10000 * .59 / 20 = 295
    # se of the difference = sqrt(595) = 24.3926; 1.96 * 24.3926 = 47.81 > 10
    assert change.standard_error == pytest.approx(24.3926, abs=1e-4)
    assert change.is_significant is False


def test_a_fall_is_judged_by_its_size_like_a_rise():
    before = NpsCounts(promoters=100, passives=60, detractors=40)
    after = NpsCounts(promoters=60, passives=60, detractors=80)
    change = NpsChange(before=before, after=after)
    assert change.delta == -40
    assert change.is_significant is True


@pytest.mark.parametrize(
    ("before", "after"),
    [(NpsCounts(), NpsCounts(promoters=3)), (NpsCounts(promoters=3), NpsCounts())],
)
def test_a_change_with_an_empty_side_has_no_delta_or_verdict(before, after):
    change = NpsChange(before=before, after=after)
    assert change.delta is None
    assert change.standard_error is None
    assert change.is_significant is None


def test_no_change_between_identical_waves_is_not_significant():
    counts = NpsCounts(promoters=5, passives=5, detractors=5)
    assert NpsChange(before=counts, after=counts).is_significant is False


# --- Response rate --------------------------------------------------------------------------


def test_response_rate_is_responses_per_invitation():
    assert response_rate(30, 120) == 0.25
    assert response_rate(0, 10) == 0


def test_response_rate_with_nobody_invited_is_none_not_zero():
    assert response_rate(0, 0) is None


# --- Properties -----------------------------------------------------------------------------

counts_strategy = st.builds(
    NpsCounts,
    promoters=st.integers(min_value=0, max_value=10_000),
    passives=st.integers(min_value=0, max_value=10_000),
    detractors=st.integers(min_value=0, max_value=10_000),
)


@given(counts_strategy)
def test_any_counts_give_an_nps_within_bounds_and_a_non_negative_margin(counts):
    if counts.n == 0:
        assert counts.nps is None and counts.margin_of_error is None
        return
    assert -100 <= counts.nps <= 100
    assert counts.margin_of_error >= 0
    # The variance p + d - (p - d)^2 is at most 1, so the margin is at most 196 / sqrt(n).
    assert counts.margin_of_error <= Z_95 * 100 / math.sqrt(counts.n) + 1e-9


@given(counts_strategy, counts_strategy)
def test_a_change_is_the_difference_of_the_two_scores(before, after):
    change = NpsChange(before=before, after=after)
    if before.n == 0 or after.n == 0:
        assert change.is_significant is None
        return
    assert change.delta == pytest.approx(after.nps - before.nps)
    assert change.standard_error >= 0


def test_a_change_between_two_large_unanimous_waves_is_significant():
    # Both plain standard errors are 0. Adjusted: before (1, 1, 51) of 53, NPS -50/53 = -94.34;
    # after (51, 1, 1), +94.34; adjusted delta 188.68. Per wave: p = 1/53, d = 51/53,
    # variance = 52/53 - (50/53)^2 = 256/2809 = 0.091135; se^2 = 10000 * 0.091135 / 53 = 17.195;
    # se of the difference = sqrt(2 * 17.195) = 5.8644; 1.96 * 5.8644 = 11.49 < 188.68.
    before = NpsCounts(detractors=50)
    after = NpsCounts(promoters=50)
    change = NpsChange(before=before, after=after)
    assert change.standard_error == 0
    assert change.adjusted_delta == pytest.approx(188.6792, abs=1e-4)
    assert change.adjusted_standard_error == pytest.approx(5.8644, abs=1e-4)
    assert change.is_significant is True
    assert NpsChange(before=before, after=before).is_significant is False


def test_one_detractor_then_one_promoter_is_within_noise_not_significant():
    # The plain test would call this significant: both standard errors are 0 and the NPS moved
    # from -100 to +100. Adjusted: before (1, 1, 2) of 4 = -25, after (2, 1, 1) = +25, delta 50;
    # per wave variance = 3/4 - 1/16 = 11/16, se^2 = 10000 * 11/16 / 4 = 1718.75;
    # se of the difference = sqrt(3437.5) = 58.630; 1.96 * 58.630 = 114.92 > 50.
    change = NpsChange(before=NpsCounts(detractors=1), after=NpsCounts(promoters=1))
    assert change.delta == 200
    assert change.standard_error == 0
    assert change.adjusted_delta == pytest.approx(50)
    assert change.adjusted_standard_error == pytest.approx(58.6302, abs=1e-4)
    assert change.is_significant is False


@pytest.mark.parametrize(("per_wave", "significant"), [(1, False), (2, False), (3, True)])
def test_unanimous_swings_need_three_answers_per_wave_to_be_significant(per_wave, significant):
    # 2 per wave: before (1, 1, 3) of 5 = -40, after +40, delta 80; variance .8 - .16 = .64,
    # se^2 = 6400 / 5 = 1280, threshold 1.96 * sqrt(2560) = 99.17 > 80.
    # 3 per wave: before (1, 1, 4) of 6 = -50, after +50, delta 100; variance 5/6 - 1/4 = 7/12,
    # se^2 = 10000 * 7/12 / 6 = 972.2, threshold 1.96 * sqrt(1944.4) = 86.43 < 100.
    change = NpsChange(before=NpsCounts(detractors=per_wave), after=NpsCounts(promoters=per_wave))
    assert change.is_significant is significant


def test_the_adjustment_keeps_the_verdicts_of_the_worked_examples():
    # 200 vs 200 (-10 -> +30): adjusted delta 39.41, adjusted se 8.008, threshold 15.70.
    big = NpsChange(
        before=NpsCounts(promoters=60, passives=60, detractors=80),
        after=NpsCounts(promoters=100, passives=60, detractors=40),
    )
    assert big.adjusted_delta == pytest.approx(39.4089, abs=1e-4)
    assert big.adjusted_standard_error == pytest.approx(8.0085, abs=1e-4)
    assert big.is_significant is True
    # 20 vs 20 (0 -> +10): adjusted delta 8.70, adjusted se 22.93, threshold 44.95.
    small = NpsChange(
        before=NpsCounts(promoters=6, passives=8, detractors=6),
        after=NpsCounts(promoters=7, passives=8, detractors=5),
    )
    assert small.adjusted_delta == pytest.approx(8.6957, abs=1e-4)
    assert small.is_significant is False


# --- Recovery rate --------------------------------------------------------------------------


def test_recovery_rate_is_the_share_of_followed_detractors_who_moved_up():
    assert recovery_rate(3, 4) == 0.75
    assert recovery_rate(0, 2) == 0


def test_recovery_rate_with_no_detractor_followed_yet_is_none():
    assert recovery_rate(0, 0) is None
