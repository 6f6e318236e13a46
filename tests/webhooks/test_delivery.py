"""Webhook deliveries against a real local HTTP receiver."""

import datetime as dt
import json
import time
import uuid

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from webhooks import payloads, services, signing, tasks
from webhooks.models import Delivery, Subscription

pytestmark = pytest.mark.django_db

EVENT = "followup.created"
DATA = {"followup_id": 7, "partner": {"id": 3, "name": "Acme Networks"}, "score": 2}


def subscribe(url, owner, *, fmt="json", events=(EVENT,)):
    return services.subscription_create(url=url, events=list(events), by=owner, fmt=fmt)


def emit_and_get(django_capture_on_commit_callbacks, event=EVENT, data=DATA) -> list[Delivery]:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event_id = services.event_emit(event=event, payload=data)
    assert len(callbacks) == Delivery.objects.filter(event_id=event_id).count()
    return list(Delivery.objects.filter(event_id=event_id).order_by("pk"))


def due_now(delivery: Delivery) -> None:
    """Skip the back-off wait: make the pending delivery due."""
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_delivery_is_signed_and_the_signature_verifies(
    receiver, admin_user, django_capture_on_commit_callbacks
):
    sub = subscribe(receiver.url, admin_user)
    [delivery] = emit_and_get(django_capture_on_commit_callbacks)

    result = services.delivery_attempt(delivery_id=delivery.pk)

    assert result.status == "delivered"
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert signing.verify(sub.secret, body, headers["X-NPS-Signature"])
    assert not signing.verify("whsec_wrong", body, headers["X-NPS-Signature"])
    assert not signing.verify(sub.secret, body + b" ", headers["X-NPS-Signature"])
    t = int(headers["X-NPS-Signature"].split(",")[0][2:])
    assert abs(t - time.time()) < 60
    envelope = json.loads(body)
    assert headers["X-NPS-Event-Id"] == envelope["id"] == str(delivery.event_id)
    assert headers["X-NPS-Event"] == EVENT
    assert envelope["event"] == EVENT
    assert envelope["data"] == DATA
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)
    assert delivery.duration_ms is not None and delivery.delivered_at is not None


def test_signature_of_an_old_timestamp_is_rejected():
    body = b'{"a":1}'
    header = signing.signature_header("s3cret", body, timestamp=1_000_000)
    assert signing.verify("s3cret", body, header, now=1_000_100)
    assert not signing.verify("s3cret", body, header, now=1_000_000 + 301)
    assert not signing.verify("s3cret", body, "garbage")


def test_a_500_is_retried_with_backoff_then_delivered(
    receiver, admin_user, django_capture_on_commit_callbacks
):
    subscribe(receiver.url, admin_user)
    receiver.reply(500, 502)
    [delivery] = emit_and_get(django_capture_on_commit_callbacks)

    first = services.delivery_attempt(delivery_id=delivery.pk)
    assert (first.status, first.retry_in) == ("pending", 30)
    delivery.refresh_from_db()
    assert delivery.response_code == 500
    assert delivery.error == "HTTP 500: receiver says no"
    # Not due yet: a second run before the back-off has passed does nothing.
    assert services.delivery_attempt(delivery_id=delivery.pk).status == "skipped"

    due_now(delivery)
    second = services.delivery_attempt(delivery_id=delivery.pk)
    assert (second.status, second.retry_in) == ("pending", 60)

    due_now(delivery)
    assert services.delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.error) == ("delivered", 3, "")
    assert len(receiver.requests) == 3
    # Every attempt carries the same event id, so the receiver can de-duplicate.
    assert {r["headers"]["X-NPS-Event-Id"] for r in receiver.requests} == {str(delivery.event_id)}
    assert Subscription.objects.get().consecutive_failures == 0


@override_settings(NPS_WEBHOOK_TIMEOUT=0.3)
def test_a_timeout_is_retried(receiver, admin_user, django_capture_on_commit_callbacks):
    subscribe(receiver.url, admin_user)
    receiver.reply(("sleep", 1.0))
    [delivery] = emit_and_get(django_capture_on_commit_callbacks)

    result = services.delivery_attempt(delivery_id=delivery.pk)

    assert result.status == "pending"
    delivery.refresh_from_db()
    assert delivery.error == "Timed out after 0.3 seconds."
    assert delivery.response_code is None
    due_now(delivery)
    assert services.delivery_attempt(delivery_id=delivery.pk).status == "delivered"


def test_connection_refused_is_retried(admin_user, django_capture_on_commit_callbacks):
    subscribe("http://127.0.0.1:9/nothing-listens", admin_user)
    [delivery] = emit_and_get(django_capture_on_commit_callbacks)
    result = services.delivery_attempt(delivery_id=delivery.pk)
    assert result.status == "pending"
    delivery.refresh_from_db()
    assert delivery.error.startswith("Connection error:")


def test_a_4xx_fails_at_once_without_retry(
    receiver, admin_user, django_capture_on_commit_callbacks
):
    subscribe(receiver.url, admin_user)
    receiver.reply(410)
    [delivery] = emit_and_get(django_capture_on_commit_callbacks)
    result = services.delivery_attempt(delivery_id=delivery.pk)
    assert (result.status, result.retry_in) == ("failed", None)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_code) == ("failed", 410)


@override_settings(NPS_WEBHOOK_DISABLE_AFTER=3)
def test_subscription_is_disabled_after_n_failures_in_a_row_and_its_owner_emailed(
    receiver, admin_user, django_capture_on_commit_callbacks
):
    sub = subscribe(receiver.url, admin_user)
    receiver.reply(500, 500, 500, 500)
    [first] = emit_and_get(django_capture_on_commit_callbacks)
    [second] = emit_and_get(django_capture_on_commit_callbacks)

    services.delivery_attempt(delivery_id=first.pk)
    due_now(first)
    services.delivery_attempt(delivery_id=first.pk)
    sub.refresh_from_db()
    assert (sub.is_active, sub.consecutive_failures) == (True, 2)
    assert mail.outbox == []

    result = services.delivery_attempt(delivery_id=second.pk)

    assert result.status == "failed"
    sub.refresh_from_db()
    assert (sub.is_active, sub.consecutive_failures) == (False, 3)
    assert sub.disabled_reason.startswith("Disabled after 3 failed deliveries in a row.")
    # The other pending delivery is failed too; nothing more is sent.
    first.refresh_from_db()
    assert (first.status, first.error) == ("failed", "The subscription was disabled.")
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    assert message.subject == f"Webhook disabled: {receiver.url}"
    assert "after 3 failed deliveries in a row" in message.body
    assert len(receiver.requests) == 3
    # A disabled subscription gets no new deliveries.
    assert services.event_emit(event=EVENT, payload=DATA) is None


@override_settings(NPS_WEBHOOK_DISABLE_AFTER=3)
def test_a_success_resets_the_failure_run(receiver, admin_user, django_capture_on_commit_callbacks):
    sub = subscribe(receiver.url, admin_user)
    receiver.reply(500, 500, 200, 500)
    deliveries = [emit_and_get(django_capture_on_commit_callbacks)[0] for _ in range(4)]
    for delivery in deliveries:
        services.delivery_attempt(delivery_id=delivery.pk)
    sub.refresh_from_db()
    assert (sub.is_active, sub.consecutive_failures) == (True, 1)


def test_running_the_task_twice_delivers_once(
    receiver, admin_user, django_capture_on_commit_callbacks
):
    subscribe(receiver.url, admin_user)
    [delivery] = emit_and_get(django_capture_on_commit_callbacks)

    assert tasks.deliver_webhook(delivery.pk) == "delivered"
    assert tasks.deliver_webhook(delivery.pk) == "skipped"

    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1


def test_task_schedules_the_retry_after_a_500(
    receiver, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    subscribe(receiver.url, admin_user)
    receiver.reply(503)
    [delivery] = emit_and_get(django_capture_on_commit_callbacks)
    scheduled = []
    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", lambda **kw: scheduled.append(kw))
    assert tasks.deliver_webhook(delivery.pk) == "pending"
    assert scheduled == [{"args": [delivery.pk], "countdown": 30}]


def test_emit_inside_a_rolled_back_transaction_sends_nothing(admin_user, receiver):
    from django.db import transaction

    subscribe(receiver.url, admin_user)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.event_emit(event=EVENT, payload=DATA)
        raise RuntimeError("the service failed after emitting")
    assert Delivery.objects.count() == 0


def test_one_event_has_one_id_across_subscriptions_and_only_subscribers_get_it(
    receiver, admin_user, django_capture_on_commit_callbacks
):
    subscribe(receiver.url, admin_user)
    subscribe(receiver.url + "?second", admin_user)
    subscribe(receiver.url + "?other", admin_user, events=["change.shipped"])
    deliveries = emit_and_get(django_capture_on_commit_callbacks)
    assert len(deliveries) == 2
    assert len({d.event_id for d in deliveries}) == 1


def test_an_unknown_event_or_unserialisable_payload_fails_in_the_caller(admin_user):
    with pytest.raises(ValueError, match="Unknown webhook event"):
        services.event_emit(event="partner.deleted", payload={})
    with pytest.raises(TypeError):
        services.event_emit(event=EVENT, payload={"when": object()})


def test_slack_format_posts_text_for_detractor_alerts_only(
    receiver, admin_user, django_capture_on_commit_callbacks
):
    subscribe(receiver.url, admin_user, fmt="slack", events=["response.created"])
    detractor = {
        "response_id": 1,
        "partner": {"id": 3, "name": "Acme Networks"},
        "score": 2,
        "category": "detractor",
        "comment": "Support takes days.",
    }
    promoter = {**detractor, "score": 10, "category": "promoter"}
    assert services.event_emit(event="response.created", payload=promoter) is None
    [delivery] = emit_and_get(django_capture_on_commit_callbacks, "response.created", detractor)

    assert services.delivery_attempt(delivery_id=delivery.pk).status == "delivered"

    body = json.loads(receiver.requests[0]["body"])
    assert body == {
        "text": ":rotating_light: Detractor alert: Acme Networks scored 2/10.\n"
        "> Support takes days."
    }


def test_sweep_requeues_deliveries_stuck_in_sending(admin_user, receiver):
    sub = subscribe(receiver.url, admin_user)
    old = timezone.now() - dt.timedelta(hours=1)
    stuck = Delivery.objects.create(
        subscription=sub,
        event_id=uuid.uuid4(),
        event=EVENT,
        payload={"id": "x", "event": EVENT, "data": {}},
        status="sending",
        claimed_at=old,
        created_at=old,
    )
    assert services.deliveries_due(now=timezone.now() + dt.timedelta(minutes=2)) == [stuck.pk]
    stuck.refresh_from_db()
    assert stuck.status == "pending"


def test_payload_builders_give_json_ready_data(django_capture_on_commit_callbacks):
    from tests.factories import FollowUpFactory

    followup = FollowUpFactory()
    data = payloads.followup_data(followup)
    assert data["followup_id"] == followup.pk
    assert data["score"] == 3
    json.dumps(data)
    assert json.loads(json.dumps(payloads.response_data(followup.response)))["category"] == (
        "detractor"
    )
