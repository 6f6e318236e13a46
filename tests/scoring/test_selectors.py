"""The report selectors: NPS counts per wave and the 0-10 distribution, on real rows."""

import datetime as dt

import pytest
from django.utils import timezone

from scoring import selectors
from surveys.models import Invitation, Wave
from tests.factories import InvitationFactory, ProgramFactory, ResponseFactory, WaveFactory

pytestmark = pytest.mark.django_db

WORKED_EXAMPLE = [10, 9, 9, 8, 7, 6, 0]


def wave_at(program, days_ago: int, **kwargs) -> Wave:
    opens_at = timezone.now() - dt.timedelta(days=days_ago)
    return WaveFactory(
        program=program, opens_at=opens_at, closes_at=opens_at + dt.timedelta(days=14), **kwargs
    )


def answer(wave: Wave, *scores: int) -> None:
    for score in scores:
        ResponseFactory(invitation__wave=wave, score=score)


def test_a_wave_with_the_worked_example_scores_gives_nps_14_29():
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, *WORKED_EXAMPLE)

    (summary,) = selectors.wave_summaries(program=wave.program)

    assert summary.wave == wave
    assert summary.responded == 7
    assert (summary.counts.promoters, summary.counts.passives, summary.counts.detractors) == (
        3,
        2,
        2,
    )
    assert round(summary.nps, 2) == 14.29
    assert summary.margin_of_error == pytest.approx(61.709, abs=1e-3)
    assert summary.promoter_percent == pytest.approx(300 / 7)
    # Every response came from its own sent invitation: 7 of 7.
    assert summary.invited == 7
    assert summary.response_rate == 1


def test_response_rate_counts_only_invitations_that_were_sent():
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 9, 3)
    InvitationFactory.create_batch(2, wave=wave)  # sent, no answer
    InvitationFactory(wave=wave, status=Invitation.Status.QUEUED, sent_at=None)
    InvitationFactory(wave=wave, status=Invitation.Status.FAILED, sent_at=None)
    InvitationFactory(wave=wave, status=Invitation.Status.CANCELLED, sent_at=None)

    (summary,) = selectors.wave_summaries(program=wave.program)

    assert summary.invited == 4  # 2 answered + 2 unanswered; queued, failed, cancelled left out
    assert summary.response_rate == 0.5
    assert summary.response_rate_percent == 50


def test_a_wave_without_responses_has_no_nps():
    wave = wave_at(ProgramFactory(), days_ago=1)
    InvitationFactory.create_batch(3, wave=wave)

    (summary,) = selectors.wave_summaries(program=wave.program)

    assert summary.has_responses is False
    assert summary.responded == 0
    assert summary.nps is None
    assert summary.margin_of_error is None
    assert summary.promoter_percent is None
    assert summary.invited == 3
    assert summary.response_rate == 0


def test_a_wave_with_nobody_invited_has_no_response_rate():
    wave = wave_at(ProgramFactory(), days_ago=1)
    (summary,) = selectors.wave_summaries(program=wave.program)
    assert summary.invited == 0
    assert summary.response_rate is None


def test_waves_come_newest_first_and_skipped_waves_are_left_out():
    program = ProgramFactory()
    oldest = wave_at(program, days_ago=270, status=Wave.Status.CLOSED)
    wave_at(program, days_ago=180, status=Wave.Status.SKIPPED)
    middle = wave_at(program, days_ago=90, status=Wave.Status.CLOSED)
    newest = wave_at(program, days_ago=1)
    answer(oldest, 0, 0)
    answer(middle, 10)

    summaries = selectors.wave_summaries(program=program)

    assert [s.wave for s in summaries] == [newest, middle, oldest]
    assert [s.nps for s in summaries] == [None, 100, -100]


def test_each_program_sees_only_its_own_waves_and_responses():
    mine, theirs = ProgramFactory(), ProgramFactory()
    my_wave = wave_at(mine, days_ago=1)
    their_wave = wave_at(theirs, days_ago=1)
    answer(my_wave, 9)
    answer(their_wave, 0, 0, 0)

    (summary,) = selectors.wave_summaries(program=mine)
    assert summary.wave == my_wave
    assert (summary.responded, summary.invited) == (1, 1)

    everything = selectors.wave_summaries()
    assert {s.wave for s in everything} == {my_wave, their_wave}


def test_a_program_without_waves_has_no_summaries(django_assert_num_queries):
    program = ProgramFactory()
    with django_assert_num_queries(1):  # the waves; no aggregates when there are none
        assert selectors.wave_summaries(program=program) == []


@pytest.mark.parametrize("wave_count", [2, 6])
def test_wave_summaries_take_three_queries_however_many_waves(
    wave_count, django_assert_num_queries
):
    program = ProgramFactory()
    for i in range(wave_count):
        answer(wave_at(program, days_ago=90 * i + 1), 10, 5, 8)
    # The waves, one conditional aggregate over responses, one aggregate over sent invitations.
    with django_assert_num_queries(3):
        summaries = selectors.wave_summaries(program=program)
        assert [s.responded for s in summaries] == [3] * wave_count
        assert [s.invited for s in summaries] == [3] * wave_count


def test_score_distribution_counts_every_score_from_0_to_10(django_assert_num_queries):
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, *WORKED_EXAMPLE, 10, 10)
    answer(wave_at(wave.program, days_ago=100), 3)  # another wave: not counted

    with django_assert_num_queries(1):  # one GROUP BY score
        distribution = selectors.score_distribution(wave=wave)

    assert [bar.score for bar in distribution.bars] == list(range(11))
    assert [bar.count for bar in distribution.bars] == [1, 0, 0, 0, 0, 0, 1, 1, 1, 2, 3]
    assert [bar.category for bar in distribution.bars[5:8]] == ["detractor", "detractor", "passive"]
    assert distribution.total == 9
    assert distribution.max_count == 3


def test_score_distribution_of_an_empty_wave_is_eleven_zeros():
    distribution = selectors.score_distribution(wave=wave_at(ProgramFactory(), days_ago=1))
    assert [bar.count for bar in distribution.bars] == [0] * 11
    assert distribution.total == 0


def test_programs_for_reports_lists_active_programs_first():
    paused = ProgramFactory(name="Alpha", is_active=False)
    active = ProgramFactory(name="Beta")
    assert list(selectors.programs_for_reports()) == [active, paused]
