"""Domain errors with a French and an English message; mapped to HTTP codes in app/web/errors.py."""

from typing import Any


class DomainError(Exception):
    """A rule of the practice was not met; the message is meant for the user."""

    status_code = 400

    def __init__(self, fr: str, en: str | None = None, **details: Any) -> None:
        super().__init__(fr)
        self.fr = fr
        self.en = en or fr
        self.details = details

    def message(self, language: str = "fr") -> str:
        return self.en if language == "en" else self.fr


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class InvalidInput(DomainError):
    status_code = 422


class NotAuthenticated(DomainError):
    status_code = 401

    def __init__(self) -> None:
        super().__init__("Veuillez vous connecter.", "Please log in.")


class PermissionDenied(DomainError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__(
            "Vous n'avez pas accès à cette page.", "You do not have access to this page."
        )


class TooManyAttempts(DomainError):
    status_code = 429
