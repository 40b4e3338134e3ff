"""Ledger: teams and keys, metering and budgets, rate limits, the hash-chained audit trail.

The gateway uses `Ledger` (open → authenticate → admit → finish → close) and `AuditRecord`;
metrics, tracing and JSON logging live in their own modules beside it.
"""

from nuri.ledger.audit.chain import VerifyResult
from nuri.ledger.audit.records import AuditRecord
from nuri.ledger.service import Admission, Ledger

__all__ = ["Admission", "AuditRecord", "Ledger", "VerifyResult"]
