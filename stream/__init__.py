"""fundflow: a streaming fund-flow monitor for consumer-credit ledgers.

Layout: `events` (parsing), `detection/` (pure detector: rolling graph, fund tracer, typologies),
`rules/` (the YAML rule language), `worker/` (Faust agents), `sinks/` (ClickHouse, pager webhook),
`cli/` (the `fundflow` command). Detection imports no I/O code.
"""

from .errors import EventError, FundflowError, RuleError, SettingsError, SinkError
from .events import Disbursement, Event, Transfer, parse_event
from .settings import Settings, load_settings
from .warning import EarlyWarning

__all__ = ["Disbursement", "EarlyWarning", "Event", "EventError", "FundflowError", "RuleError",
           "Settings", "SettingsError", "SinkError", "Transfer", "load_settings", "parse_event"]
