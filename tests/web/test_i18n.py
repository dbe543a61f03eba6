"""French and English catalogs hold the same keys, and every key a template uses exists."""

import re
from pathlib import Path

from app.web.i18n import catalog, translate

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "web" / "templates"


def test_catalogs_have_the_same_keys() -> None:
    assert set(catalog("fr")) == set(catalog("en"))


def test_every_literal_key_used_in_templates_exists() -> None:
    used = set()
    for template in TEMPLATES.rglob("*.html"):
        used |= set(
            re.findall(r"""(?<![\w.])t\(\s*["']([a-z_.]+)["']\s*[,)]""", template.read_text())
        )
    assert used, "no translated text found in templates"
    missing = sorted(key for key in used if key not in catalog("fr"))
    assert not missing


def test_translate_formats_and_falls_back() -> None:
    assert translate("fr", "home.title", name="Sophie") == "Bonjour, Sophie"
    assert translate("en", "home.title", name="Sophie") == "Hello, Sophie"
    assert translate("en", "no.such.key") == "no.such.key"
