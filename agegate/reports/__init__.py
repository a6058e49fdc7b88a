"""Reports from parents that a child has an account, through to the signed answer; see
:mod:`agegate.reports.service`."""

from ..errors import InvalidReport, ReportError
from .fields import ACCOUNT_KINDS, RELATIONS, ReportFields
from .limit import ReportLimit
from .service import CLOSE_REASONS, PURGED, Delivery, Report, Reports, is_reference

__all__ = [
    "ACCOUNT_KINDS",
    "CLOSE_REASONS",
    "PURGED",
    "RELATIONS",
    "Delivery",
    "InvalidReport",
    "Report",
    "ReportError",
    "ReportFields",
    "ReportLimit",
    "Reports",
    "is_reference",
]
