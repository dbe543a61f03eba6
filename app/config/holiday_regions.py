"""The regions whose French public holidays differ from mainland France's.

Kept beside the settings (not in the scheduling domain) because the setting is validated when
the process starts: a misspelt region must stop the start-up, not silently fall back to the
mainland calendar and offer slots on Alsace's Good Friday.
"""

import unicodedata

import holidays

# Alsace is one subdivision in the library; the departments' numbers are what people type.
_DEPARTMENTS = {"67": "6AE", "68": "6AE"}


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def holiday_subdivision(value: str) -> str:
    """The library's subdivision code for a code, department number or name ("" = mainland).

    Raises ``KeyError`` naming the accepted codes.
    """
    if not value.strip():
        return ""
    codes: tuple[str, ...] = holidays.France.subdivisions
    aliases: dict[str, str] = dict(getattr(holidays.France, "subdivisions_aliases", {}))
    wanted = _folded(value)
    for code in codes:
        if _folded(code) == wanted:
            return code
    for alias, code in [*aliases.items(), *_DEPARTMENTS.items()]:
        if _folded(alias) == wanted:
            return code
    raise KeyError(
        f"unknown French holiday subdivision {value!r}: one of {', '.join(codes)}, 67, 68"
    )
