"""Two staff members changing the same follow-up at once: no lost update. The services lock the
follow-up row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions take the
write lock at BEGIN) and check the version the person saw; the second is told."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from followups.models import FollowUp, FollowUpEvent
from followups.services import StaleFollowUpError, followup_log_contact, followup_transition
from tests.factories import FollowUpFactory

pytestmark = pytest.mark.django_db(transaction=True)

HOLD = 0.4  # seconds the first change keeps its transaction (and the row lock) open


def _run(*targets):
    results = [None] * len(targets)

    def call(index, target):
        try:
            results[index] = target()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_second_of_two_changes_made_from_the_same_version_is_refused_and_told(
    cs_manager, cs_agent
):
    followup = FollowUpFactory(assignee=cs_agent)
    seen = followup.version
    first_holds_lock = threading.Event()

    def first():
        with transaction.atomic():
            followup_transition(followup_id=followup.pk, to="contacted", by=cs_agent, version=seen)
            first_holds_lock.set()
            time.sleep(HOLD)
        return "saved"

    def second():
        first_holds_lock.wait(10)
        started = time.monotonic()
        try:
            followup_transition(
                followup_id=followup.pk,
                to="no_action",
                by=cs_manager,
                closed_reason="Duplicate",
                version=seen,
            )
        except StaleFollowUpError as exc:
            return ("stale", time.monotonic() - started, str(exc))
        return ("saved", time.monotonic() - started, "")

    result_first, (outcome, waited, message) = _run(first, second)

    assert result_first == "saved"
    assert outcome == "stale"
    assert "Someone else changed this follow-up" in message
    assert waited >= HOLD * 0.5  # it waited for the first transaction's lock
    followup.refresh_from_db()
    assert (followup.status, followup.version) == ("contacted", seen + 1)
    events = FollowUpEvent.objects.filter(followup=followup)
    assert list(events.values_list("new_value", flat=True)) == ["contacted"]


def test_many_staff_changing_the_same_version_at_once_save_exactly_one(cs_manager, cs_agent):
    for _round in range(5):
        followup = FollowUpFactory(assignee=cs_agent)
        seen = followup.version
        start = threading.Barrier(4)

        def change(by, note, followup=followup, seen=seen, start=start):
            start.wait()
            try:
                followup_log_contact(
                    followup_id=followup.pk, by=by, kind="call", note=note, version=seen
                )
            except StaleFollowUpError:
                return "stale"
            return "saved"

        results = _run(
            *(
                (lambda by=by, n=n: change(by, f"Call {n}"))
                for n, by in enumerate([cs_agent, cs_manager, cs_agent, cs_manager])
            )
        )

        assert sorted(results) == ["saved", "stale", "stale", "stale"]
        followup.refresh_from_db()
        assert followup.version == seen + 1
        assert FollowUpEvent.objects.filter(followup=followup, kind="call").count() == 1


def test_changes_without_a_version_wait_for_the_lock_and_both_are_kept(cs_manager, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    start = threading.Barrier(2)

    def note(by, text):
        start.wait()
        return followup_log_contact(followup_id=followup.pk, by=by, kind="note", note=text)

    results = _run(lambda: note(cs_agent, "Agent's note"), lambda: note(cs_manager, "Manager's"))

    assert not any(isinstance(r, Exception) for r in results), results
    followup.refresh_from_db()
    assert followup.version == 3  # 1 + two changes: neither overwrote the other
    assert set(FollowUpEvent.objects.filter(followup=followup).values_list("note", flat=True)) == {
        "Agent's note",
        "Manager's",
    }


def test_the_page_tells_the_second_person_and_changes_nothing(cs_manager, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    url = reverse("followups:transition", args=[followup.pk])
    agent, manager = Client(), Client()
    agent.force_login(cs_agent)
    manager.force_login(cs_manager)

    first = agent.post(url, {"to": "contacted", "version": followup.version})
    second = manager.post(
        url,
        {"to": "no_action", "closed_reason": "Duplicate", "version": followup.version},
        follow=True,
    )

    assert first.status_code == 302
    assert "Someone else changed this follow-up" in second.content.decode()
    followup.refresh_from_db()
    assert followup.status == "contacted"
    assert FollowUp.objects.get(pk=followup.pk).version == 2
