"""Every detector, in the order the scanner runs them, and every entity type they report.

A new entity type is declared in its detector module (an `EntityKind` and a `Registration`, see
spec.py) and gets one line here; the scanner, policy's list of known types, PIPA categories, the
pseudonymiser's value comparison and its surrogates all read it from this module.

Order matters in two places only: detectors that share a trigger run over one set of windows when
they are listed together, and a detector that `yields` (person names) sees the hits of those
listed before it.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from nuri.privacy import surrogates
from nuri.privacy.detectors import (
    address,
    bank,
    card,
    date_of_birth,
    email,
    ip,
    kr_ids,
    passport,
    person,
    phone,
    secret,
    us_ssn,
    vehicle_plate,
)
from nuri.privacy.detectors.spec import EntityKind, Fold, Registration
from nuri.privacy.types import PipaCategory

# Person names are declared here rather than in detectors/person.py, which builds its detector
# from settings (`privacy.person_model`, `privacy.person_threshold`).
PERSON = EntityKind("PERSON", PipaCategory.PERSONAL, surrogates.person)
_NAME_HINT = re.compile(r"[가-힣]|[A-Z][a-z]")
PERSON_REGISTRATION = Registration(
    "person", (PERSON,),
    build=lambda settings: person.detector(settings.person_model == "kiwi", settings.person_threshold).detect,
    gate=lambda text, lowered: _NAME_HINT.search(text) is not None,
    yields=True,
)

REGISTRATIONS: tuple[Registration, ...] = (
    # identifiers: windows around digit runs (spec.NUMERIC), one windowing for all of them
    kr_ids.REGISTRATION,
    phone.REGISTRATION,
    card.REGISTRATION,
    bank.REGISTRATION,
    us_ssn.REGISTRATION,            # shapes: one regex scan for SSNs, plates and IPv4 together
    vehicle_plate.REGISTRATION,
    ip.V4,
    # the rest, each behind its own prefilter
    address.KOREAN,
    address.ENGLISH,
    email.REGISTRATION,
    ip.V6,
    secret.REGISTRATION,
    date_of_birth.REGISTRATION,
    passport.REGISTRATION,
    PERSON_REGISTRATION,            # last: model-tagged names yield to everything above
)


def _kinds(registrations: tuple[Registration, ...]) -> dict[str, EntityKind]:
    out: dict[str, EntityKind] = {}
    for r in registrations:
        for k in r.kinds:
            if out.setdefault(k.name, k) is not k:
                raise ValueError(f"entity type {k.name} is declared twice")
    return out


KINDS: MappingProxyType[str, EntityKind] = MappingProxyType(_kinds(REGISTRATIONS))
ENTITY_TYPES: tuple[str, ...] = tuple(KINDS)
"""Every entity type the scanner reports: the only list of them (policy rules may name these)."""


def category(entity_type: str) -> PipaCategory:
    """PIPA Art. 24 / Decree Art. 19 unique identifiers, Credit Information Act financial data,
    secrets; anything else, and an unknown type, is PERSONAL."""
    kind = KINDS.get(entity_type)
    return kind.category if kind is not None else PipaCategory.PERSONAL


def fold(entity_type: str) -> Fold:
    kind = KINDS.get(entity_type)
    return kind.fold if kind is not None else "text"


def make_surrogate(entity_type: str, value: str, n: int) -> str:
    """A fake value of the same shape as `value`, unique per `n` within a type (surrogates.py)."""
    kind = KINDS.get(entity_type)
    return surrogates.make(entity_type, kind.surrogate if kind is not None else None, value, n)
