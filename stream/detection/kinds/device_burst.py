"""device_burst: several distinct accounts receive disbursements requested from one device (or one IP) within
a window.

Why it matters: one fraudster applying for loans in many names from one phone. A household may share a device,
so the default needs three distinct borrowers within six hours.
"""

from __future__ import annotations

from ._common import Param, count, hours, min_amount_param, within_param
from ...rules.params import choice

NAME = "device_burst"
TRIGGERS = frozenset({"disbursement"})

PARAMS = (
    Param("min_accounts", count(2), 3, "Fewest distinct borrower accounts sharing the device.", looser="lower"),
    within_param(hours(6), "All counted disbursements happen within this long of each other (ending now)."),
    Param("key", choice("device_id", "ip", "device_or_ip"), "device_id",
          "What identifies the requester: the device id, the IP, or either (two checks)."),
    min_amount_param("Ignore disbursements smaller than this (units)."),
)


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
