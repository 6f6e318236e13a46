"""The partner's side in a real browser: Debian's Chromium driven by Playwright, on a phone
(360x740, touch) and a desktop viewport.

Answering by tap and by keyboard alone, a score link that preselects and stores nothing until
submit, revising an answer, every language, the page weight of the first load, and an axe-core
accessibility check (served from tests/browser/vendor/, no network) on every partner page.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from surveys.models import Contact, PartnerType, Response, Tier, Wave
from surveys.services import response_submit, token_issue
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    WaveFactory,
)

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"viewport": {"width": 360, "height": 740}, "has_touch": True, "is_mobile": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PAGE_WEIGHT_BUDGET = 50 * 1024  # bytes of HTML, CSS and JavaScript on the first load
SCREENSHOTS = os.environ.get("NPS_SCREENSHOTS_DIR")  # set to write docs/screenshots


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's Chromium is missing: run scripts/ensure-browser.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(params=["phone", "desktop"])
def device(request):
    return request.param, PHONE if request.param == "phone" else DESKTOP


@pytest.fixture
def page_for(browser):
    contexts = []

    def make(options: dict, **extra):
        context = browser.new_context(**options, **extra)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def survey(transactional_db, live_server):
    """Makes an open invitation (the contact's language in English unless asked) and gives
    (invitation, the absolute address of its form)."""

    # transactional_db empties the tables between tests, the migrations' default tiers too.
    Tier.objects.get_or_create(name="Gold")
    PartnerType.objects.get_or_create(name="Reseller")

    def make(language: str = "en", **program_fields):
        program = ProgramFactory(
            sender_name="Northwind Partner Program",
            intro="Your answer goes straight to the partner team.",
            **program_fields,
        )
        partner = PartnerFactory()
        contact = ContactFactory(partner=partner, name="Anna Schmidt", language=language)
        invitation = InvitationFactory(wave=WaveFactory(program=program), contact=contact)
        token = token_issue(invitation=invitation)
        return invitation, live_server.url + reverse("surveys:respond", args=[token])

    return make


def prompt_of(page) -> str:
    return page.locator(".why-prompt").inner_text()


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def axe_violations(page) -> list[dict]:
    """Every axe-core violation of the page as it is now (id, impact, help, node count)."""
    # Evaluated through DevTools, not as an inline <script>: the partner pages' CSP
    # (script-src 'self') rightly refuses inline scripts.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length})))"
    )


def serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]


# --- Answering ----------------------------------------------------------------------------------


def test_a_partner_answers_by_tap_on_a_phone(survey, page_for):
    invitation, url = survey()
    page = page_for(PHONE)
    page.goto(url)

    assert no_horizontal_scroll(page)
    page.tap("label[for=score-9]")
    assert page.is_checked("#score-9")
    assert prompt_of(page) == "What do you value most in working with us?"  # the script's work
    page.fill("textarea[name=comment]", "Great enablement team")
    page.tap("button.submit")

    page.wait_for_url("**/thanks/")
    assert "We have your answer: 9 out of 10." in page.inner_text("main")
    response = Response.objects.get(invitation=invitation)
    assert (response.score, response.comment) == (9, "Great enablement team")


def test_every_score_is_a_thumb_sized_target_at_360px(survey, page_for):
    _invitation, url = survey()
    page = page_for(PHONE)
    page.goto(url)

    for n in range(11):
        box = page.locator(f"label[for=score-{n}]").bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44, (n, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, (n, box)


def test_a_partner_answers_by_keyboard_alone(survey, page_for):
    invitation, url = survey()
    page = page_for(DESKTOP)
    page.goto(url)

    for _ in range(30):  # Tab from the top until the scale has focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "score":
            break
    assert page.evaluate("document.activeElement.id") == "score-0"
    # The focused score shows a visible outline.
    outline = page.evaluate(
        "getComputedStyle(document.activeElement.nextElementSibling).outlineStyle"
    )
    assert outline == "solid"
    page.keyboard.press("Space")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.is_checked("#score-3")
    assert prompt_of(page) == "What disappointed you most, and what should we do better?"
    page.keyboard.press("Tab")
    page.keyboard.type("Quotes take a week")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type") == "submit":
            break
    page.keyboard.press("Enter")

    page.wait_for_url("**/thanks/")
    assert "Someone from our team will be in touch within 2 business days" in page.inner_text(
        "main"
    )
    response = Response.objects.get(invitation=invitation)
    assert (response.score, response.comment) == (3, "Quotes take a week")


def test_a_score_link_preselects_and_stores_nothing_until_submit(survey, page_for, device):
    invitation, url = survey()
    _name, options = device
    page = page_for(options)

    page.goto(url + "?score=7")
    page.reload()  # a second visit, as a scanner's GET and the partner's own

    assert page.is_checked("#score-7")
    assert prompt_of(page) == "What would make it a 10 for you?"
    assert Response.objects.count() == 0
    invitation.refresh_from_db()
    assert invitation.first_opened_at is None

    page.click("button.submit")  # one tap sends the chosen score
    page.wait_for_url("**/thanks/")
    assert Response.objects.get(invitation=invitation).score == 7


def test_the_form_works_without_javascript(survey, page_for):
    invitation, url = survey()
    page = page_for(PHONE, java_script_enabled=False)
    page.goto(url + "?score=2")

    assert prompt_of(page) == "What disappointed you most, and what should we do better?"
    page.tap("label[for=score-8]")
    page.tap("button.submit")

    page.wait_for_url("**/thanks/")
    assert Response.objects.get(invitation=invitation).score == 8


def test_a_partner_revises_the_answer(survey, page_for):
    invitation, url = survey()
    page = page_for(DESKTOP)
    page.goto(url)
    page.click("label[for=score-5]")
    page.click("button.submit")
    page.wait_for_url("**/thanks/")
    first = Response.objects.get(invitation=invitation)

    page.click("text=Change my answer")
    assert page.is_checked("#score-5")
    assert "You answered 5 on" in page.inner_text(".notice")
    page.click("label[for=score-9]")
    page.click("text=Update my answer")
    page.wait_for_url("**/thanks/")

    response = Response.objects.get(invitation=invitation)
    assert (response.pk, response.score, response.category) == (first.pk, 9, "promoter")


def test_extra_questions_and_the_contact_request_are_sent(survey, page_for):
    invitation, url = survey(
        extra_questions=[
            {
                "key": "support",
                "label": "How was support?",
                "type": "choice",
                "choices": ["Good", "Poor"],
            },
            {"key": "wish", "label": "One thing you wish we did?", "type": "text"},
        ]
    )
    page = page_for(PHONE)
    page.goto(url)
    page.tap("label[for=score-6]")
    page.check("input[name=q_support][value=Poor]")
    page.fill("#id_q_wish", "Faster quotes")
    page.check("#id_wants_contact")
    page.tap("button.submit")
    page.wait_for_url("**/thanks/")

    response = Response.objects.get(invitation=invitation)
    assert response.answers == {"support": "Poor", "wish": "Faster quotes"}
    assert response.wants_contact is True


# --- Languages ----------------------------------------------------------------------------------

SEND = {
    "en": "Send my answer",
    "de": "Antwort senden",
    "fr": "Envoyer ma réponse",
    "es": "Enviar mi respuesta",
    "ja": "回答を送信する",
}


@pytest.mark.parametrize("lang", list(SEND))
def test_each_language_renders_on_a_phone(survey, page_for, lang):
    invitation, url = survey(language=lang)
    page = page_for(PHONE)
    page.goto(url)

    assert page.get_attribute("html", "lang") == lang
    assert page.inner_text("button.submit") == SEND[lang]
    assert no_horizontal_scroll(page)
    page.tap("label[for=score-10]")
    page.tap("button.submit")
    page.wait_for_url("**/thanks/")
    assert page.get_attribute("html", "lang") == lang
    assert Response.objects.get(invitation=invitation).language == lang


def test_the_language_switcher_changes_only_the_page(survey, page_for):
    invitation, url = survey(language="de")
    page = page_for(PHONE)
    page.goto(url + "?score=4")

    page.tap("nav.languages >> text=日本語")

    assert page.get_attribute("html", "lang") == "ja"
    assert page.is_checked("#score-4")  # the chosen score is kept
    assert Contact.objects.get(pk=invitation.contact_id).language == "de"


# --- Page weight and accessibility ----------------------------------------------------------


def test_the_form_weighs_under_50_kb_on_first_load(survey, page_for, capsys):
    _invitation, url = survey()
    page = page_for(PHONE)
    sizes = {}

    def count(response):
        kind = response.request.resource_type
        if kind in ("document", "stylesheet", "script"):
            sizes[response.url] = (kind, len(response.body()))

    page.on("response", count)
    page.goto(url)
    page.wait_for_load_state("networkidle")

    total = sum(size for _kind, size in sizes.values())
    with capsys.disabled():
        detail = ", ".join(f"{kind} {size} B" for kind, size in sizes.values())
        print(f"\nsurvey form first load: {total} bytes ({detail})")
    assert {kind for kind, _size in sizes.values()} == {"document", "stylesheet", "script"}
    assert total < PAGE_WEIGHT_BUDGET


def partner_pages(survey, live_server):
    """Every partner page, as (name, url, expected status)."""
    pages = []
    invitation, url = survey()
    pages.append(("form", url, 200))
    pages.append(("form with a score", url + "?score=3", 200))
    pages.append(("unsubscribe", url + "unsubscribe/", 200))

    answered, answered_url = survey()
    response_submit(invitation_id=answered.pk, score=3, comment="Slow support")
    pages.append(("thanks (detractor)", answered_url + "thanks/", 200))
    pages.append(("form, already answered", answered_url, 200))

    for lang in ("de", "ja"):
        _inv, lang_url = survey(language=lang)
        pages.append((f"form ({lang})", lang_url, 200))

    closed, closed_url = survey()
    response_submit(invitation_id=closed.pk, score=9)
    Wave.objects.filter(pk=closed.wave_id).update(
        status=Wave.Status.CLOSED, closes_at=timezone.now() - dt.timedelta(minutes=1)
    )
    pages.append(("closed", closed_url, 410))

    later, later_url = survey()
    Wave.objects.filter(pk=later.wave_id).update(
        opens_at=timezone.now() + dt.timedelta(days=1),
        closes_at=timezone.now() + dt.timedelta(days=15),
    )
    pages.append(("not open yet", later_url, 403))
    pages.append(("unknown link", live_server.url + "/s/" + "A" * 32 + "/", 404))
    return pages


def test_no_serious_or_critical_accessibility_violation_on_any_partner_page(
    survey, live_server, page_for, device, capsys
):
    name, options = device
    page = page_for(options)
    report = {}
    for label, url, status in partner_pages(survey, live_server):
        response = page.goto(url)
        assert response.status == status, label
        report[label] = axe_violations(page)

    # The form with errors, and the unsubscribe confirmation after the POST.
    _invitation, url = survey()
    page.goto(url)
    page.click("button.submit")
    assert "Your answer was not saved" in page.inner_text("main")
    report["form with an error"] = axe_violations(page)
    page.goto(url + "unsubscribe/")
    page.click("button.submit")
    assert "You're unsubscribed" in page.inner_text("main")
    report["unsubscribed"] = axe_violations(page)

    with capsys.disabled():
        others = sorted({f"{v['id']} ({v['impact']})" for found in report.values() for v in found})
        print(f"\naxe-core on {name}: {len(report)} pages; minor/moderate: {others or 'none'}")
    assert {label: serious(found) for label, found in report.items() if serious(found)} == {}


# --- Screenshots (into docs/ when NPS_SCREENSHOTS_DIR is set, else a temporary folder) --------


def test_the_email_and_form_render_to_screenshots(survey, page_for, tmp_path):
    from surveys.services import invitation_message

    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    invitation, url = survey(
        brand_colour="#5b2c6f",
        extra_questions=[
            {
                "key": "support",
                "label": "How was partner support this quarter?",
                "type": "choice",
                "choices": ["Good", "Could be better", "Poor"],
            },
        ],
    )
    token = url.rstrip("/").rsplit("/", 1)[1]
    for lang in ("en", "de", "ja"):
        Contact.objects.filter(pk=invitation.contact_id).update(language=lang)
        invitation.contact.language = lang
        message = invitation_message(invitation=invitation, token=token)
        (html, _mimetype), *_ = message.alternatives
        for device, options in (("phone", PHONE), ("desktop", DESKTOP)):
            if lang != "en" and device == "desktop":
                continue
            page = page_for(options)
            page.set_content(html)
            page.screenshot(path=str(folder / f"email-{lang}-{device}.png"), full_page=True)
    Contact.objects.filter(pk=invitation.contact_id).update(language="en")

    for device, options in (("phone", PHONE), ("desktop", DESKTOP)):
        page = page_for(options)
        page.goto(url + "?score=6")
        page.screenshot(path=str(folder / f"survey-form-{device}.png"), full_page=True)
    page = page_for(PHONE)
    page.goto(url + "?lang=ja&score=9")
    page.screenshot(path=str(folder / "survey-form-ja-phone.png"), full_page=True)
    page.tap("button.submit")
    page.wait_for_url("**/thanks/**")
    page.screenshot(path=str(folder / "survey-thanks-phone.png"), full_page=True)

    shots = [
        "email-de-phone.png",
        "email-en-desktop.png",
        "email-en-phone.png",
        "email-ja-phone.png",
        "survey-form-desktop.png",
        "survey-form-ja-phone.png",
        "survey-form-phone.png",
        "survey-thanks-phone.png",
    ]
    assert all((folder / name).stat().st_size > 5000 for name in shots)
