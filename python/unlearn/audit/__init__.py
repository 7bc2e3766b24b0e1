"""How close each unlearning method comes to retraining, per forget example
and over many models: `audit()` (exported as `unlearn.audit`)."""

from .report import AuditResult
from .requests import AuditRequest, audit_request
from .runner import TrainFunction, audit

__all__ = ["AuditRequest", "AuditResult", "TrainFunction", "audit", "audit_request"]
