"""PII recognizers: a candidate pattern (RE2) and a validator from a maintained library.

Presidio's analyzer was the first choice and is not used: it requires spaCy (and numpy) even
for its pattern recognizers, and its e-mail recognizer calls tldextract, which fetches the
public-suffix list over the network on first use. The candidate patterns below follow
Presidio's pattern recognizers (MIT); the checks that make them precise come from maintained
libraries: python-stdnum (Luhn for cards, ISO 13616 mod-97 for IBANs, the SSA's rules for
SSNs), phonenumbers (Google's libphonenumber metadata) and the standard library's ipaddress.

More types plug in as `Recognizer(entity, pattern, validate)`: `[sanitization] pii_patterns`
adds pattern-only ones from config (see `custom_recognizers`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn as std_luhn
from stdnum.us import ssn as std_ssn


@dataclass(frozen=True, slots=True)
class Recognizer:
    entity: str  # the finding type, e.g. "EMAIL_ADDRESS"
    pattern: str  # RE2 syntax; group 1, when present, is the value
    validate: Callable[[str], bool] | None = None  # False: a look-alike, not a finding


def _card(text: str) -> bool:
    digits = "".join(c for c in text if c.isdigit())
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and std_luhn.is_valid(digits)


def _iban(text: str) -> bool:
    return std_iban.is_valid(text)


def _ssn(text: str) -> bool:
    return std_ssn.is_valid(text.replace(" ", "-"))


def _phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    if digits < 10 or digits > 15:
        return False
    try:
        num = phonenumbers.parse(text, None if text.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(num)


def _ip(text: str) -> bool:
    if ":" in text and (not any(c.isdigit() for c in text) or len(text) < 6):
        return False  # "a::b", "dead::beef": C++ scopes and words, not addresses
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


BUILTIN: tuple[Recognizer, ...] = (
    Recognizer("EMAIL_ADDRESS",
               r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"),
    Recognizer("CREDIT_CARD", r"\b(?:\d[ -]?){12,18}\d\b", _card),
    Recognizer("IBAN_CODE", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _iban),
    Recognizer("US_SSN", r"\b\d{3}([- ])\d{2}[- ]\d{4}\b", None),  # validated below (same separator)
    Recognizer("PHONE_NUMBER",
               r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\b\d{2,4}[ .-])\d{2,4}[ .-]?\d{3,4}\b", _phone),
    Recognizer("IP_ADDRESS", r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b", _ip),
    Recognizer("IP_ADDRESS",
               r"(?i)(?:\b[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:){0,5}"
               r"[0-9a-f]{1,4}\b", _ip),
)


def _ssn_same_separator(text: str) -> bool:
    return (text[3] == text[6]) and _ssn(text)


BUILTIN = tuple(Recognizer(r.entity, r.pattern, _ssn_same_separator) if r.entity == "US_SSN" else r
                for r in BUILTIN)
ENTITIES: tuple[str, ...] = tuple(dict.fromkeys(r.entity for r in BUILTIN))


def recognizers(entities: tuple[str, ...] | None = None,
                custom: dict[str, str] | None = None) -> tuple[Recognizer, ...]:
    """The built-in recognizers for `entities` (all when None) and the config's own patterns."""
    chosen = tuple(r for r in BUILTIN if entities is None or r.entity in entities)
    return chosen + custom_recognizers(custom or {})


def custom_recognizers(patterns: dict[str, str]) -> tuple[Recognizer, ...]:
    return tuple(Recognizer(name, pattern) for name, pattern in patterns.items())
