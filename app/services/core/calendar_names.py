"""Weekday and month names in French and English, indexed like ``date.weekday()`` (Monday is
0) and ``date.month - 1``.

Written out rather than taken from ``strftime("%A")``: that follows the server's locale, not
the language of the patient or the secretary who reads the text.
"""

WEEKDAYS_FR: tuple[str, ...] = (
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
)  # fmt: skip
WEEKDAYS_EN: tuple[str, ...] = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)  # fmt: skip
MONTHS_FR: tuple[str, ...] = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
MONTHS_EN: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

WEEKDAYS: dict[str, tuple[str, ...]] = {"fr": WEEKDAYS_FR, "en": WEEKDAYS_EN}
MONTHS: dict[str, tuple[str, ...]] = {"fr": MONTHS_FR, "en": MONTHS_EN}
