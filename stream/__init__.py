"""fundflow: a streaming fund-flow monitor for consumer-credit ledgers.

The packages are the layers, inner first; each imports only the ones before it in this list
(tests/unit/test_house.py checks it): `model/` (events and their contract, warnings, money, time formats) with
`settings`, `errors` and `clock`; `rules/` (the YAML rule language); `indicators/` (indicators shared between
lenders); `detection/` (the pure detector: partitioned state, rolling graph, fund tracer, kinds); `evidence/`
(the hashes and signatures of the evidence chain); `sinks/` (ClickHouse, pager webhook); `worker/` (the Faust
worker, wired in `worker/compose.py`); `simulate/` (labelled synthetic ledgers); `offline/` (replay, rule tests,
evaluate, produce, evidence bundles); `dev/` (the local stack, worker processes, the demo); `console/` (the
analyst console); `cli/` (the `fundflow` command). Detection imports no I/O code.
"""

from .errors import EventError, FundflowError, RuleError, SettingsError, SinkError
from .model.events import Disbursement, Event, Transfer, parse_event
from .settings import Settings, load_settings
from .model.warning import EarlyWarning

__all__ = ["Disbursement", "EarlyWarning", "Event", "EventError", "FundflowError", "RuleError",
           "Settings", "SettingsError", "SinkError", "Transfer", "load_settings", "parse_event"]
