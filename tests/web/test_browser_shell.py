"""A secretary logs in, registers a patient and finds her again, in a real browser."""

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_secretary_logs_in_and_registers_a_patient(browser_page, staff) -> None:
    page = browser_page
    page.goto(page.base_url + "/patients")
    assert "/login" in page.url  # anonymous: sent to the login page, then back
    page.get_by_label("Identifiant").fill("secretaire")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/patients")

    page.get_by_role("link", name="Nouveau patient").click()
    page.get_by_label("Nom de naissance").fill("Lefèvre")
    page.get_by_label("Prénom").fill("Hélène")
    page.get_by_label("Date de naissance").fill("1975-03-04")
    page.get_by_label("Féminin").check()
    page.get_by_label("Téléphone").fill("06 12 34 56 78")
    page.get_by_label("N° de sécurité sociale (NIR)").fill("2 75 03 49 588 157 00")
    page.get_by_role("button", name="Enregistrer").click()
    # A wrong NIR key: the form comes back with the error and everything typed kept.
    assert page.get_by_role("alert").is_visible()
    assert "sécurité sociale" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Nom de naissance").input_value() == "Lefèvre"
    page.get_by_label("N° de sécurité sociale (NIR)").fill("")
    page.get_by_role("button", name="Enregistrer").click()
    page.wait_for_url("**/patients/*")
    assert "Patient enregistré." in page.content()

    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_label("Nom, prénom").fill("lefevre helene")
    page.get_by_role("button", name="Rechercher").click()
    assert page.get_by_role("link", name="Lefèvre Hélène").is_visible()
    assert page.off_box.urls == []
