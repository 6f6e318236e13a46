"""Languages: the partner's pages and emails come from Django's catalogues in English, German,
French, Spanish and Japanese, chosen from the contact's language; a switcher changes only what
the page shows; dates follow the language; every catalogue is compiled and complete."""

import ast
import datetime as dt
import gettext
import re
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse

from surveys.models import Contact, Response, Wave
from surveys.services import invitation_message, response_submit, supported_language, token_issue
from tests.factories import ContactFactory, InvitationFactory, ProgramFactory, WaveFactory

LOCALE = Path(settings.BASE_DIR) / "locale"
TRANSLATED = ["de", "fr", "es", "ja"]
# Sources whose text partners read: every msgid they use must be translated.
PARTNER_SOURCES = (
    "templates/surveys/",
    "templates/security/",
    "templates/emails/invitation_",
    "templates/emails/partner_notice_",
    "templates/base.html",
    "surveys/forms.py",
    "surveys/views.py",
    "surveys/services.py",
    "surveys/branding.py",
)

# The form's "Send my answer" button and the thank-you heading in each language.
SEND = {
    "en": "Send my answer",
    "de": "Antwort senden",
    "fr": "Envoyer ma réponse",
    "es": "Enviar mi respuesta",
    "ja": "回答を送信する",
}


# --- Reading the catalogues -----------------------------------------------------------------


def po_entries(path: Path) -> list[dict]:
    """The entries of a .po file: msgid, msgid_plural, msgstr forms, flags and references."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry = {"refs": [], "flags": "", "msgstr": {}}
        key = None
        for line in block.splitlines():
            if line.startswith("#:"):
                entry["refs"] += line[2:].split()
            elif line.startswith("#,"):
                entry["flags"] += line[2:]
            elif line.startswith("#"):
                continue
            else:
                match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d)\])?) (".*")$', line)
                if match:
                    key = match.group(1)
                    text = ast.literal_eval(match.group(3))
                    if key.startswith("msgstr"):
                        key = ("msgstr", int(match.group(2) or 0))
                        entry["msgstr"][key[1]] = text
                    else:
                        entry[key] = text
                elif line.startswith('"') and key:
                    text = ast.literal_eval(line)
                    if isinstance(key, tuple):
                        entry["msgstr"][key[1]] += text
                    else:
                        entry[key] += text
        if "msgid" in entry:
            entries.append(entry)
    return entries


def is_partner_facing(entry) -> bool:
    return any(ref.startswith(PARTNER_SOURCES) for ref in entry["refs"])


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_partner_facing_message_is_translated(lang):
    entries = [e for e in po_entries(LOCALE / lang / "LC_MESSAGES" / "django.po") if e["msgid"]]
    partner = [e for e in entries if is_partner_facing(e)]

    assert len(partner) >= 70
    untranslated = [e["msgid"] for e in partner if not all(e["msgstr"].values())]
    fuzzy = [e["msgid"] for e in partner if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_catalogue_is_compiled(lang):
    """The .mo is committed (CI needs no gettext): it must hold what the .po says."""
    folder = LOCALE / lang / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)

    checked = 0
    for entry in po_entries(folder / "django.po"):
        if not entry["msgid"] or "fuzzy" in entry["flags"] or not all(entry["msgstr"].values()):
            continue
        if "msgid_plural" in entry:
            for n, form in entry["msgstr"].items():
                count = {0: 1, 1: 2, 2: 1000000}[n] if lang == "es" else (1 if n == 0 else 2)
                assert compiled.ngettext(entry["msgid"], entry["msgid_plural"], count) == form
        else:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"][0], entry["msgid"]
        checked += 1
    assert checked >= 70


@pytest.mark.parametrize("lang", TRANSLATED)
def test_placeholders_survive_translation(lang):
    for entry in po_entries(LOCALE / lang / "LC_MESSAGES" / "django.po"):
        if not entry["msgid"] or not all(entry["msgstr"].values()):
            continue
        wanted = sorted(re.findall(r"%\(\w+\)s", entry["msgid"]))
        for form in entry["msgstr"].values():
            assert sorted(re.findall(r"%\(\w+\)s", form)) == wanted, entry["msgid"]


# --- Choosing the language -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("de", "de"),
        ("DE", "de"),
        ("de-AT", "de"),
        ("ja", "ja"),
        ("en", "en"),
        ("it", "en"),  # a valid ISO 639-1 code without a translation yet: English
        ("", "en"),
        ("xx", "en"),
        (None, "en"),
    ],
)
def test_the_contacts_language_is_used_when_it_has_a_translation(code, expected):
    assert supported_language(code) == expected


@pytest.fixture
def invitation_in(db):
    def make(language: str):
        program = ProgramFactory(sender_name="Northwind")
        contact = ContactFactory(name="Anna", language=language)
        invitation = InvitationFactory(wave=WaveFactory(program=program), contact=contact)
        return invitation, token_issue(invitation=invitation)

    return make


@pytest.mark.parametrize("lang", ["en", *TRANSLATED])
def test_the_form_is_in_the_contacts_language(client, invitation_in, lang):
    _invitation, token = invitation_in(lang)

    page = client.get(reverse("surveys:respond", args=[token]))

    html = page.content.decode()
    assert page["Content-Language"] == lang
    assert f'<html lang="{lang}">' in html
    assert SEND[lang] in html


def test_a_language_without_a_translation_gets_english_and_says_so(client, invitation_in):
    _invitation, token = invitation_in("it")

    page = client.get(reverse("surveys:respond", args=[token]))

    assert page["Content-Language"] == "en"
    assert '<html lang="en">' in page.content.decode()


def test_the_default_question_is_translated_but_a_programs_own_is_not(client, invitation_in):
    invitation, token = invitation_in("de")

    html = client.get(reverse("surveys:respond", args=[token])).content.decode()
    assert "Wie wahrscheinlich ist es, dass Sie uns einem Freund oder Kollegen empfehlen?" in html
    assert "Was ist der Hauptgrund für Ihre Bewertung?" in html

    program = invitation.wave.program
    program.question = "Würden Sie Northwind empfehlen?"
    program.save()
    html = client.get(reverse("surveys:respond", args=[token])).content.decode()
    assert "Würden Sie Northwind empfehlen?" in html


@pytest.mark.django_db
def test_the_switcher_changes_the_page_language_and_nothing_stored(client, invitation_in):
    invitation, token = invitation_in("de")
    url = reverse("surveys:respond", args=[token])
    before = Contact.objects.values_list("language", "updated_at").get(pk=invitation.contact_id)

    page = client.get(url, {"lang": "fr", "score": "3"})

    html = page.content.decode()
    assert page["Content-Language"] == "fr"
    assert SEND["fr"] in html
    # Every language is offered, as a plain link that keeps the chosen score.
    assert f'href="{url}?score=3&amp;lang=ja"' in html
    assert 'aria-current="true">Français</a>' in html
    # The answer posts back in French and the thank-you page follows in French.
    assert f'action="{url}?lang=fr"' in html
    posted = client.post(f"{url}?lang=fr", {"score": "3"})
    assert posted["Location"] == reverse("surveys:thanks", args=[token]) + "?lang=fr"
    assert "Merci, Anna !" in client.get(posted["Location"]).content.decode()
    # Nothing about the language was stored: the contact keeps German, the answer records it.
    assert (
        Contact.objects.values_list("language", "updated_at").get(pk=invitation.contact_id)
        == before
    )
    assert Response.objects.get().language == "de"


@pytest.mark.django_db
def test_an_unknown_switcher_language_is_ignored(client, invitation_in):
    _invitation, token = invitation_in("es")

    page = client.get(reverse("surveys:respond", args=[token]), {"lang": "it"})

    assert page["Content-Language"] == "es"


@pytest.mark.parametrize(
    ("lang", "date"),
    [
        ("en", "Jan. 29, 2027"),
        ("de", "29. Januar 2027"),
        ("fr", "29 janvier 2027"),
        ("es", "29 de enero de 2027"),
        ("ja", "2027年1月29日"),
    ],
)
def test_dates_follow_the_language(client, invitation_in, lang, date):
    invitation, token = invitation_in(lang)
    Wave.objects.filter(pk=invitation.wave_id).update(
        opens_at=dt.datetime(2027, 1, 15, 9, tzinfo=dt.UTC),
        closes_at=dt.datetime(2027, 1, 29, 9, tzinfo=dt.UTC),
    )
    invitation.wave.refresh_from_db()
    response_submit(
        invitation_id=invitation.pk, score=6, now=dt.datetime(2027, 1, 16, 12, tzinfo=dt.UTC)
    )

    with time_machine.travel(dt.datetime(2027, 1, 20, 12, tzinfo=dt.UTC)):
        html = client.get(reverse("surveys:respond", args=[token])).content.decode()
    text = invitation_message(invitation=invitation, token=token).body

    assert date in html
    assert date in text


@pytest.mark.parametrize(
    ("lang", "subject", "greeting"),
    [
        ("de", "Wie wahrscheinlich ist es, dass Sie uns einem Kollegen empfehlen?", "Hallo Anna,"),
        ("fr", "Quelle est la probabilité que vous nous recommandiez à un collègue ?", "Bonjour"),
        ("es", "¿Qué probabilidad hay de que nos recomiende a un colega?", "Hola, Anna:"),
        ("ja", "同僚に当社を薦める可能性はどのくらいありますか？", "Anna 様"),
    ],
)
def test_the_invitation_email_is_in_the_contacts_language(invitation_in, lang, subject, greeting):
    invitation, token = invitation_in(lang)

    message = invitation_message(invitation=invitation, token=token)

    (html, _mimetype), *_ = message.alternatives
    assert message.subject == subject
    assert message.body.startswith(greeting)
    assert f'<html lang="{lang}">' in html
    assert "Not at all likely" not in html and "Unsubscribe" not in html


@pytest.mark.parametrize("lang", TRANSLATED)
def test_a_detractor_is_told_the_sla_in_their_language(client, invitation_in, lang):
    _invitation, token = invitation_in(lang)

    page = client.post(reverse("surveys:respond", args=[token]), {"score": "2"}, follow=True)

    html = page.content.decode()
    assert "2" in html
    assert "business day" not in html
    assert "Someone from our team" not in html
