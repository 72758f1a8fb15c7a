"""One detector per kind of personal data or secret: where it is in a text, validated.

Each detector has a cheap RE2 ``prefilter`` (run by Arrow over a whole column, so most rows never
reach Python) and a ``find`` that returns validated ``(start, end)`` spans of one text. Validation
uses well-kept libraries where they exist: ``phonenumbers`` (its metadata ships in the wheel) for
phone numbers, ``ipaddress`` for IP ranges, ``detect-secrets``' patterns for known key formats; a
Luhn check for payment cards and the ISO 13616 mod-97 check for IBANs are a few lines each.
Allow-lists keep training examples useful: placeholder domains (RFC 2606/6761), documentation
address ranges (RFC 5737/3849), fictional 555-01xx numbers.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

Span = tuple[int, int]


@dataclass(frozen=True)
class Detector:
    name: str
    prefilter: str  # RE2 syntax, case-sensitive unless it says (?i)
    find: Callable[[str], list[Span]]


# --------------------------------------------------------------------------- e-mail

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)
# RFC 2606 / 6761 names reserved for examples, and the addresses examples use everywhere.
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "example.edu")
PLACEHOLDER_TLDS = ("example", "test", "invalid", "localhost", "local")


def placeholder_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return (
        domain in PLACEHOLDER_DOMAINS
        or domain.endswith(tuple("." + d for d in PLACEHOLDER_DOMAINS))
        or domain.rsplit(".", 1)[-1] in PLACEHOLDER_TLDS
        or domain.startswith("example.")
        or domain in ("domain.com", "email.com", "yourdomain.com", "company.com", "mail.com")
    )


# Local parts that say "an address goes here", and machine or role addresses that name no one.
_PLACEHOLDER_LOCAL = re.compile(
    r"(?i)^(?:(?:my|your|our|some)[._-]\w+|(?:my|your|our|the)(?:e?mail|name|address|account)\w*|"
    r"user(?:name)?\d*|name|e?mail(?:address)?|me|you|"
    r"someone|somebody|test\d*|example|sample|x+|y+|z+|abc|xyz|foo|bar|\d+|lorem(?:\.ipsum)?|"
    r"john\.?doe|jane\.?doe|git|noreply|no-reply|donotreply|do-not-reply)$"
)
_PLACEHOLDER_SLD = re.compile(
    r"(?i)^(?:x+|y+|z+|\w|domain|yourdomain|mydomain|email|example|sample|test|company|"
    r"yourcompany|mycompany|somecompany|website|yoursite|mysite|site|dolor|lorem|acme|foo|bar)$"
)


def find_emails(text: str) -> list[Span]:
    spans = []
    for match in _EMAIL.finditer(text):
        local, domain = match.group().rsplit("@", 1)
        second_level = domain.rsplit(".", 2)[-2] if "." in domain else domain
        if (
            placeholder_domain(domain)
            or _PLACEHOLDER_LOCAL.match(local)
            or _PLACEHOLDER_SLD.match(second_level)
        ):
            continue
        spans.append(match.span())
    return spans


# --------------------------------------------------------------------------- phone numbers

_PHONE_CANDIDATE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().\-/]{7,18}\d(?![\w.]\d)")


_PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|call|tel|mobile|cell|fax|contact|number|reach|text|dial|whatsapp|sms)\W{0,3}(?:\w+\W+){0,4}$"
)
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_DOTTED_PHONE = re.compile(r"^\+?[\d ]*\(?\d{3}\)?\.\d{3}\.\d{4}$|^\d{2}(?:\.\d{2}){4}$")


def _ascending_run(digits: str, length: int = 5) -> bool:
    """Digits like 2345678 or 123456: the made-up numbers of examples."""
    run = 1
    for previous, current in itertools.pairwise(digits):
        run = run + 1 if int(current) == (int(previous) + 1) % 10 else 1
        if run >= length:
            return True
    return False


def phone_finder(regions: Sequence[str]) -> Callable[[str], list[Span]]:
    """Numbers valid for one of ``regions`` (national format) or in international format that
    could belong to a person: not toll-free, premium or shared-cost lines (hotlines, businesses),
    not 555 or ascending-digit examples, not bare digit runs without a word like "call" or
    "phone" before them, not dates, versions or lists of small numbers."""

    def find(text: str) -> list[Span]:
        import phonenumbers
        from phonenumbers import PhoneNumberType

        not_personal = {
            PhoneNumberType.TOLL_FREE,
            PhoneNumberType.PREMIUM_RATE,
            PhoneNumberType.SHARED_COST,
            PhoneNumberType.UAN,
        }
        spans: dict[Span, None] = {}
        for region in regions or ("US",):
            for match in phonenumbers.PhoneNumberMatcher(
                text, region, leniency=phonenumbers.Leniency.VALID
            ):
                number, raw = match.number, match.raw_string
                national = str(number.national_number)
                # 555 exchange numbers in North America are fictional (555-0100..0199 reserved).
                if number.country_code == 1 and national[3:6] == "555":
                    continue
                if phonenumbers.number_type(number) in not_personal or _ascending_run(national):
                    continue
                groups = re.findall(r"\d+", raw)
                if sum(len(g) == 1 for g in groups) >= 3 or "–" in raw:
                    continue  # "1 2 3 4 5 6 7 8 9 10", a range of years
                if "." in raw and not _DOTTED_PHONE.match(raw.strip("()")):
                    continue  # a version or section number
                if "/" in raw and _YEAR.search(raw):
                    continue  # a date
                bare = raw.isdigit() and not raw.startswith("+")
                if bare and not _PHONE_CONTEXT.search(text, 0, match.start):
                    continue  # a number in a list, an id, an amount
                spans[(match.start, match.end)] = None
        return sorted(spans)

    return find


# --------------------------------------------------------------------------- IP addresses

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,6}|[0-9A-Fa-f]{1,4})(?![\w:])"
    r"|(?<![\w:.])::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}(?![\w:])"
)
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\bv(?:ersion)?|release|build|\bver|\bgit|python|node|chrome|§|section|chapter)"
    r"\.?\s*$"
)
# Not personal: private, loopback, link-local, documentation (RFC 5737, 3849), multicast, reserved.
DEFAULT_ALLOWED_NETWORKS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "0.0.0.0/8",
    "100.64.0.0/10",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "::/128",
    "fc00::/7",
    "fe80::/10",
    "2001:db8::/32",
    "ff00::/8",
)


def ip_finder(allowed: Sequence[str]) -> Callable[[str], list[Span]]:
    networks = [ipaddress.ip_network(net, strict=False) for net in allowed]

    def is_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net for net in networks)

    def find(text: str) -> list[Span]:
        spans = []
        for pattern in (_IPV4, _IPV6):
            for match in pattern.finditer(text):
                try:
                    address = ipaddress.ip_address(match.group())
                except ValueError:
                    continue
                if is_allowed(address):
                    continue
                if address.version == 4 and _VERSION_BEFORE.search(text, 0, match.start()):
                    continue  # "version 1.2.3.4" is a release number
                spans.append(match.span())
        return sorted(spans)

    return find


# --------------------------------------------------------------------------- payment cards

_CARD = re.compile(r"(?<![\d.,-])(?:\d[ -]?){12,18}\d(?![\d])")
# Issuer prefixes (IIN ranges) of the card networks, and the lengths each uses.
_CARD_BRANDS = (
    (re.compile(r"4"), (13, 16, 19)),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),  # Mastercard
    (re.compile(r"3[47]"), (15,)),  # American Express
    (re.compile(r"6(?:011|5|4[4-9])"), (16, 19)),  # Discover
    (re.compile(r"35(?:2[89]|[3-8])"), (16, 19)),  # JCB
    (re.compile(r"3(?:0[0-5]|[68])"), (14, 16, 19)),  # Diners Club
    (re.compile(r"62"), (16, 19)),  # UnionPay
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_cards(text: str) -> list[Span]:
    spans = []
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(set(digits)) < 3 or not luhn_ok(digits):
            continue
        if any(brand.match(digits) and len(digits) in lengths for brand, lengths in _CARD_BRANDS):
            spans.append(match.span())
    return spans


# --------------------------------------------------------------------------- IBAN

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# ISO 13616 lengths of the countries that use IBANs.
_IBAN_LENGTHS = {
    **dict.fromkeys(["NO"], 15),
    **dict.fromkeys(["BE"], 16),
    **dict.fromkeys(["DK", "FI", "FO", "GL", "NL"], 18),
    **dict.fromkeys(["MK", "SI"], 19),
    **dict.fromkeys(["AT", "BA", "EE", "KZ", "LT", "LU", "XK"], 20),
    **dict.fromkeys(["CH", "CR", "HR", "LI", "LV"], 21),
    **dict.fromkeys(["BG", "BH", "DE", "GB", "GE", "IE", "ME", "RS", "VA"], 22),
    **dict.fromkeys(["AE", "GI", "IL", "TL", "IQ"], 23),
    **dict.fromkeys(["AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"], 24),
    **dict.fromkeys(["PT", "ST"], 25),
    **dict.fromkeys(["IS", "TR"], 26),
    **dict.fromkeys(["FR", "GR", "IT", "MC", "MR", "SM"], 27),
    **dict.fromkeys(["AL", "AZ", "BY", "CY", "DO", "GT", "HU", "LB", "PL", "SV"], 28),
    **dict.fromkeys(["BR", "EG", "PS", "QA", "UA"], 29),
    **dict.fromkeys(["JO", "KW", "MU"], 30),
    **dict.fromkeys(["MT", "SC"], 31),
    **dict.fromkeys(["LC"], 32),
}


def iban_ok(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def find_ibans(text: str) -> list[Span]:
    spans = []
    for match in _IBAN.finditer(text):
        compact = match.group().replace(" ", "")
        # The regex may run into a following word: try the longest valid prefix.
        for length in sorted({_IBAN_LENGTHS.get(compact[:2], 0)}, reverse=True):
            if length and len(compact) >= length and iban_ok(compact[:length]):
                end = match.start()
                seen = 0
                while seen < length:  # map the compact length back onto the spaced text
                    if text[end] != " ":
                        seen += 1
                    end += 1
                spans.append((match.start(), end))
    return spans


# --------------------------------------------------------------------------- secrets


@cache
def _secret_patterns() -> tuple[re.Pattern[str], ...]:
    """The key formats of ``detect-secrets``' regex plugins (cloud, VCS, chat, payment tokens),
    except its IP plugin (``ip`` is its own type here) and the header-only private-key patterns
    (a whole ``BEGIN ... PRIVATE KEY`` block is matched below)."""
    import importlib
    import inspect
    import pkgutil

    import detect_secrets.plugins as plugins
    from detect_secrets.plugins.base import RegexBasedDetector

    skip = {"IPPublicDetector", "PrivateKeyDetector"}
    found: list[re.Pattern[str]] = []
    for module_info in sorted(pkgutil.iter_modules(plugins.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{plugins.__name__}.{module_info.name}")
        for name, cls in sorted(inspect.getmembers(module, inspect.isclass)):
            if (
                issubclass(cls, RegexBasedDetector)
                and cls is not RegexBasedDetector
                and cls.__module__ == module.__name__
                and name not in skip
            ):
                found.extend(cls.denylist)  # type: ignore[arg-type]  # a class attribute there
    return tuple(found)


_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_ASSIGNED = re.compile(
    r"(?i)(?<![a-z])(?:password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|"
    r"secret[_-]?key|private[_-]?key|client[_-]?secret)(?![a-z])[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9+/_\-.!@#$%^&*=]{12,})"
)


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def find_secrets(text: str) -> list[Span]:
    spans = [match.span() for match in _PRIVATE_KEY.finditer(text)]
    for pattern in _secret_patterns():
        for match in pattern.finditer(text):
            start, end = match.span(1) if pattern.groups and match.group(1) else match.span()
            # A pattern may stop inside a token (case, length): hide the whole token, not part.
            while end < len(text) and (text[end].isalnum() or text[end] in "_-"):
                end += 1
            spans.append((start, end))
    for match in _ASSIGNED.finditer(text):
        value = match.group(1)
        # A real credential is random: long, mixed, high entropy (not "your_password_here").
        if (
            _entropy(value) >= 3.5
            and re.search(r"\d", value)
            and re.search(r"[A-Za-z]", value)
            and not re.search(r"(?i)your|example|placeholder|changeme|xxxx|\*\*\*", value)
        ):
            spans.append(match.span(1))
    return spans


# --------------------------------------------------------------------------- registry

PREFILTERS = {
    "email": r"@[A-Za-z0-9-]+\.",
    "phone": r"\d[\d\s().\-/]{6,}\d",
    "ip": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{0,4}:",
    "card": r"(?:\d[ -]?){12,18}\d",
    "iban": r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}",
    # Key formats are too varied for one cheap filter: an RE2 union of their fixed parts.
    "secret": (
        r"PRIVATE KEY|AKIA|ASIA|gh[pousr]_|glpat-|xox[abposr]-|sk_live|rk_live|sk-|SG\.|"
        r"npm_|pypi-|AIza|eyJ|(?i:password|passwd|pwd|secret|api[_-]?key|apikey|token|"
        r"cloudant|artifactory|softlayer|twilio|discord|telegram|ibm|cos_hmac)|"
        r"://[^/\s:@]+:[^/\s:@]+@|SK[0-9a-fA-F]{32}|AC[0-9a-fA-F]{32}|EAAA|sq0csp"
    ),
}


def detectors(phone_regions: Sequence[str], allowed_networks: Sequence[str]) -> dict[str, Detector]:
    return {
        "email": Detector("email", PREFILTERS["email"], find_emails),
        "phone": Detector("phone", PREFILTERS["phone"], phone_finder(tuple(phone_regions))),
        "ip": Detector("ip", PREFILTERS["ip"], ip_finder(tuple(allowed_networks))),
        "card": Detector("card", PREFILTERS["card"], find_cards),
        "iban": Detector("iban", PREFILTERS["iban"], find_ibans),
        "secret": Detector("secret", PREFILTERS["secret"], find_secrets),
    }


def pattern_detector(name: str, pattern: str) -> Detector:
    """A user's own type: every match of ``pattern`` (Python syntax; group 1 if it has one)."""
    compiled = re.compile(pattern)

    def find(text: str) -> list[Span]:
        return [
            match.span(1) if compiled.groups else match.span() for match in compiled.finditer(text)
        ]

    return Detector(name, "", find)


TYPES = ("email", "phone", "ip", "card", "iban", "secret")
