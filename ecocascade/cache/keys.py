"""The exact cache key's text: normalise only what cannot change a request's meaning.

Unicode NFC (the same characters, composed or not) and whitespace (leading, trailing, repeated).
Case and punctuation are meaning — "Compute 5!" (a factorial) is not "Compute 5", "US" is not
"us" — so two requests that differ in them are two entries.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["exact_key_text"]

_SPACE = re.compile(r"\s+")


def exact_key_text(query: str) -> str:
    """``query`` in NFC with runs of whitespace as one space and none at either end."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", query)).strip()
