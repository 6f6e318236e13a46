"""The form's first visit comes from ``surveys.form_page`` (rendered once per variant, the token,
CSRF token and name filled in per partner): it must be exactly the page of the full render,
whatever the names hold, in every language, with score links, branding and extra questions."""

import re
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from surveys import views
from surveys.forms import ResponseForm, parse_score
from surveys.models import Program
from surveys.services import PerEmailValueMissing, response_record, token_issue
from tests.factories import ContactFactory, InvitationFactory, ProgramFactory, WaveFactory

pytestmark = pytest.mark.django_db

NAMES = [
    '<b>"O\'Brien & Co"</b>',
    "Zoë Ñúñez-Łukasiewicz",
    "100% {{ name }} {% if %} %(subject)s",
    "<script>alert(1)</script>",
    "",
]
LANGUAGES = ["en", "de", "fr", "es", "ja", "pt", "de-AT"]
QUERIES = ["", "?score=3", "?score=10&lang=de", "?lang=fr", "?score=x", "?lang=zz"]
CSRF_VALUE = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]+"')


def _normalised(html: str) -> str:
    return CSRF_VALUE.sub(r'\1CSRF"', html)


def _full_render(url: str, invitation, token: str) -> str:
    """The page as the full render makes it (no cache), for the same request."""
    request = RequestFactory().get(url)
    chosen = parse_score(request.GET.get("score"))
    program = invitation.wave.program
    form = ResponseForm(
        initial={} if chosen is None else {"score": chosen},
        program=program,
        why_prompt=program.why_prompt,
    )
    page = views._form_page(request, invitation, token, form, previous=None)
    return page.content.decode()


@pytest.fixture
def program():
    return ProgramFactory(
        sender_name='Acme <"Partners">',
        intro="Thanks for <b>being</b> a partner.\nIt takes 30 seconds.",
        brand_colour="#aa3300",
        logo_url="https://cdn.example.com/logo.png",
        extra_questions=[
            {"key": "support", "label": "How is support?", "type": "text"},
            {"key": "plan", "label": "Your plan", "type": "choice", "choices": ["A", "B & C"]},
        ],
    )


@pytest.fixture
def wave(program):
    return WaveFactory(program=program)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", NAMES)
def test_the_first_visit_is_exactly_the_full_render(client, program, name, language):
    views._FIRST_VISITS.clear()
    invitation = InvitationFactory(
        wave=WaveFactory(program=program), contact=ContactFactory(name=name, language=language)
    )
    token = token_issue(invitation=invitation)
    url = reverse("surveys:respond", args=[token])
    from surveys.services import invitation_for_token

    loaded = invitation_for_token(token)
    for query in QUERIES:
        first = client.get(url + query)  # renders the variant with placeholders
        again = client.get(url + query)  # from the cache
        assert first.status_code == again.status_code == 200
        full = _normalised(_full_render(url + query, loaded, token))
        assert _normalised(first.content.decode()) == full, query
        assert _normalised(again.content.decode()) == full, query
        assert first["Content-Language"] == again["Content-Language"]
        assert first["Referrer-Policy"] == "no-referrer"
        assert first["Cache-Control"] == "no-store"


def test_each_partner_gets_their_own_name_and_token_and_no_cookie(client, program):
    views._FIRST_VISITS.clear()
    wave = WaveFactory(program=program)
    pages = []
    for name in ["Ana <Ana>", "Bo & Bo"]:
        invitation = InvitationFactory(wave=wave, contact=ContactFactory(name=name))
        token = token_issue(invitation=invitation)
        client.cookies.clear()
        page = client.get(reverse("surveys:respond", args=[token]))
        assert not page.cookies  # partner pages set no cookie (no CSRF token: see views)
        pages.append((token, page.content.decode()))
    (token_a, page_a), (token_b, page_b) = pages
    assert "Hello Ana &lt;Ana&gt;," in page_a and "Bo &amp; Bo" not in page_a
    assert "Hello Bo &amp; Bo," in page_b and "Ana" not in page_b
    assert token_a in page_a and token_a not in page_b
    assert token_b in page_b and token_b not in page_a


def test_the_posted_form_from_the_cached_page_is_accepted(client, program):
    invitation = InvitationFactory(wave=WaveFactory(program=program))
    token = token_issue(invitation=invitation)
    url = reverse("surveys:respond", args=[token])
    client.get(url)
    page = client.get(url)  # from the cache
    assert 'action="' + url + '"' in page.content.decode()
    answer = client.post(url, {"score": "4", "comment": "Slow"})
    assert answer.status_code == 302
    assert invitation.__class__.objects.get(pk=invitation.pk).response.score == 4


def test_an_admins_edit_shows_at_once_even_without_a_save(client, program):
    invitation = InvitationFactory(wave=WaveFactory(program=program))
    url = reverse("surveys:respond", args=[token_issue(invitation=invitation)])
    assert "Acme &lt;&quot;Partners&quot;&gt;" in client.get(url).content.decode()
    # A queryset update changes no updated_at: the key holds every column, so it still shows.
    Program.objects.filter(pk=program.pk).update(sender_name="Globex")
    page = client.get(url).content.decode()
    assert "Globex" in page and "Acme" not in page


def test_a_revisit_shows_the_answer_not_a_cached_first_visit(client, program):
    invitation = InvitationFactory(wave=WaveFactory(program=program))
    token = token_issue(invitation=invitation)
    url = reverse("surveys:respond", args=[token])
    client.get(url)
    response_record(
        invitation=invitation, score=6, comment="Pricing <is> unclear", answers={"plan": "A"}
    )
    page = client.get(url).content.decode()
    assert "Pricing &lt;is&gt; unclear</textarea>" in page
    assert 'value="A" checked' in page
    assert "Update my answer" in page


def test_the_cache_is_bounded(client, program):
    views._FIRST_VISITS.clear()
    invitation = InvitationFactory(wave=WaveFactory(program=program))
    url = reverse("surveys:respond", args=[token_issue(invitation=invitation)])
    maxsize = views._FIRST_VISITS.maxsize
    views._FIRST_VISITS.maxsize = 3
    try:
        for score in range(6):
            assert client.get(f"{url}?score={score}").status_code == 200
        assert len(views._FIRST_VISITS._pages) == 3
    finally:
        views._FIRST_VISITS.maxsize = maxsize


def test_a_template_reading_another_contact_value_fails_loudly():
    stand_in = views._FIRST_VISITS.stand_in("contact")
    assert stand_in.name.endswith("name")
    with pytest.raises(PerEmailValueMissing, match=r"contact\.email.*FirstVisitPages"):
        stand_in.email  # noqa: B018


def test_a_token_of_another_shape_is_never_filled_in():
    pages = views._FIRST_VISITS
    assert pages.page(("k",), render=lambda: "x", token="a/b", name="n") is None
    assert pages.page(("k",), render=lambda: "x", token="a b", name="n") is None


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    score=st.one_of(st.none(), st.integers(-3, 14).map(str), st.text(max_size=4)),
    lang=st.one_of(st.none(), st.sampled_from(["en", "DE", "fr", "es", "ja", "pt", "x"])),
)
def test_any_score_link_or_language_choice_gives_the_full_render(client, wave, score, lang):
    invitation = InvitationFactory(wave=wave, contact=ContactFactory(name="Ana <Ana> & Co"))
    token = token_issue(invitation=invitation)
    query = urlencode({k: v for k, v in {"score": score, "lang": lang}.items() if v is not None})
    url = reverse("surveys:respond", args=[token]) + (f"?{query}" if query else "")
    from surveys.services import invitation_for_token

    for _ in range(2):  # a miss, then a hit
        page = client.get(url)
        assert page.status_code == 200
        full = _full_render(url, invitation_for_token(token), token)
        assert _normalised(page.content.decode()) == _normalised(full)
