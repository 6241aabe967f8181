"""One settings object for every command: a YAML file, overridden by `FUNDFLOW_*` environment variables.

Every key of the file is a field of `Settings`; the environment variable for field `x` is `FUNDFLOW_X`
(`broker_url` -> `FUNDFLOW_BROKER_URL`). Invalid settings raise `SettingsError` with one line naming the
key, where it came from, what was expected and what arrived, before anything starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import yaml

from .errors import SettingsError
from .model import defaults
from .model.money import parse_amount_minor
from .model.warning import SEVERITY_RANK
from .model.timefmt import format_duration_ms, parse_duration_ms

ENV_PREFIX = "FUNDFLOW_"
SEVERITIES = tuple(SEVERITY_RANK)     # lowest first


def _duration(value: Any) -> int:
    return parse_duration_ms(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:  # floats (80.5, .inf), booleans, lists: refused rather than silently truncated
        raise ValueError(f"expected a positive integer, got {value!r}")
    if number <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def _port(value: Any) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise ValueError(f"expected a TCP port 1-65535, got {value!r}")
    return number


def _broker_url(value: Any) -> str:
    text = str(value).strip()
    for part in text.split(";"):
        url = urlparse(part if "://" in part else f"kafka://{part}")
        try:
            port = url.port
        except ValueError:      # urlparse refuses ports outside 0-65535
            port = None
        if url.scheme != "kafka" or not url.hostname or not port:
            raise ValueError(f"expected kafka://HOST:PORT (several separated by ';'), got {value!r}")
    return text


def _clickhouse_url(value: Any) -> str:
    text = str(value).strip()
    url = urlparse(text)
    if url.scheme == "chdb":
        if not (url.netloc + url.path):
            raise ValueError(f"expected chdb:///ABSOLUTE/PATH or chdb://RELATIVE/PATH, got {value!r}")
        return text
    if url.scheme in ("clickhouse", "clickhouses") and url.hostname:
        try:
            url.port            # urlparse refuses ports that are not numbers or outside 0-65535
        except ValueError:
            raise ValueError(f"expected clickhouse://HOST:PORT/DATABASE with a port 1-65535, got {value!r}") \
                from None
        return text
    raise ValueError(f"expected clickhouse://HOST:PORT/DATABASE or chdb:///PATH, got {value!r}")


def _http_url(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    url = urlparse(text)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return text


def _optional_amount(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return parse_amount_minor(value)


def _severity(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in SEVERITIES:
        raise ValueError(f"expected one of {', '.join(SEVERITIES)}, got {value!r}")
    return text


def _choice(*options: str):
    def check(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return text
    return check


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _text(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _field_names(value: Any) -> tuple[str, ...]:
    """A list of input field names (YAML list, or comma-separated text in the environment)."""
    if value in (None, ""):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"expected a list of field names, got {value!r}")
    names = []
    for item in items:
        name = str(item).strip() if isinstance(item, (str, int)) else None
        if not name or not name.replace("_", "a").isalnum():
            raise ValueError(f"expected field names of letters, digits and _, got {item!r}")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _setting(default: Any, parse, doc: str, shown: str | None = None):
    return field(default=default, metadata={"parse": parse, "doc": doc, "shown": shown})


def _duration_setting(default: str, doc: str):
    """A span of time, stored as ms and shown the way it was written ("72h", not 259200000)."""
    return _setting(parse_duration_ms(default), _duration, doc, shown=default)


@dataclass(frozen=True)
class Settings:
    """Everything an operator can set. Durations are stored as epoch-ms spans."""

    broker_url: str = _setting("kafka://127.0.0.1:9092", _broker_url, "Kafka bootstrap servers")
    app_id: str = _setting("fundflow", _text, "Faust app id = Kafka consumer group")
    disbursements_topic: str = _setting("fundflow.disbursements", _text, "input topic of disbursements")
    transfers_topic: str = _setting("fundflow.transfers", _text, "input topic of transfers")
    deadletter_topic: str = _setting("fundflow.deadletter", _text, "refused input, with the reason")
    warnings_topic: str = _setting("fundflow.warnings", _text, "the durable outbox of warnings")
    topic_partitions: int = _setting(1, _positive_int, "partitions of topics fundflow creates")
    clickhouse_url: str = _setting("chdb://.fundflow/chdb", _clickhouse_url,
                                   "warning store: clickhouse://HOST:PORT/DB or chdb:///PATH (embedded)")
    clickhouse_batch_size: int = _setting(500, _positive_int, "rows per ClickHouse insert, at most")
    clickhouse_batch_interval: int = _duration_setting("1s", "longest a row waits before it is inserted")
    webhook_url: str | None = _setting(None, _http_url, "pager webhook; unset = no paging")
    webhook_secret: str | None = _setting(None, _optional_text, "HMAC-SHA256 key signing webhook bodies")
    webhook_format: str = _setting("generic", _choice("generic", "pagerduty"), "payload format of pages")
    page_min_severity: str = _setting("high", _severity, "lowest severity that pages")
    page_storm_limit: int = _setting(10, _positive_int, "pages per rule per minute before they are grouped")
    pagerduty_routing_key: str | None = _setting(None, _optional_text,
                                                 "PagerDuty Events API v2 routing key (webhook_format: pagerduty)")
    webhook_timeout: int = _duration_setting("10s", "longest wait for the pager webhook to answer")
    sink_retry_initial: int = _duration_setting("200ms", "first backoff of a sink retry (doubles each time)")
    sink_retry_max: int = _duration_setting("30s", "longest backoff between sink retries")
    rules_dir: str = _setting("rules", _text, "directory of YAML rule files (and overrides)")
    window: int = _duration_setting(defaults.WINDOW, "event-time span of the rolling graph")
    allowed_lateness: int = _duration_setting(defaults.ALLOWED_LATENESS, "how late an event may be and still count as on time")
    align_idle_after: int = _duration_setting("250ms",
                                     "an input partition silent this long (wall time) stops holding back "
                                     "the event-time alignment of the others")
    align_max_pending: int = _setting(200_000, _positive_int,
                                      "events the aligner may hold; beyond it the oldest go to the detector early")
    rules_reload_interval: int = _duration_setting("5s", "how often the worker checks rules_dir for changes")
    tracer_policy: str = _setting(defaults.TRACER_POLICY, _choice(*defaults.TRACER_POLICIES),
                                  "which money an outflow spends first: the freshest (lifo), the oldest (fifo) "
                                  "or a share of each (proportional)")
    trace_inflows_above: int | None = _setting(None, _optional_amount,
                                               "also trace inflows of unknown origin at or above this amount "
                                               "(units, e.g. 5000); unset = trace loan money only")
    identity_fields: tuple[str, ...] = _setting((), _field_names,
                                                "extra input fields that identify who made an event, beside "
                                                "device_id and ip (a phone hash, a registration batch): "
                                                "accounts sharing one are linked (identity_ring)", shown="none")
    web_port: int = _setting(6066, _port, "worker HTTP port: /healthz, /readyz, /metrics")
    broker_session_timeout: int = _duration_setting("10s", "Kafka consumer session timeout")
    broker_rebalance_timeout: int = _duration_setting("10s", "Kafka consumer rebalance timeout")
    broker_fetch_max_wait: int = _duration_setting("100ms",
                                          "longest a fetch waits at the broker for new data (Kafka answers "
                                          "as soon as data arrives; some dev brokers wait it out)")
    indicators_dir: str | None = _setting(None, _optional_text,
                                          "directory of the local indicator set that `fundflow indicators import` "
                                          "writes and the worker reloads like rules_dir; unset = no sharing")
    indicator_keys: str | None = _setting(None, _optional_text,
                                          "directory of the consortium keys, one <key_id>.key file each (HMAC "
                                          "secrets shared by the members)")
    indicator_key_id: str | None = _setting(None, _optional_text,
                                            "the consortium key id feeds are published under now")
    indicator_overlap_key_id: str | None = _setting(None, _optional_text,
                                                    "during a key rotation: the other key id every entry is also "
                                                    "published under; unset = none")
    indicator_signing_key: str | None = _setting(None, _optional_text,
                                                 "this institution's Ed25519 private key (PEM) that signs its feeds")
    indicators_topic: str | None = _setting(None, _optional_text,
                                            "Kafka topic of the members' feeds (e.g. fundflow.indicators, "
                                            "compacted, keyed by institution): the worker merges every feed on it "
                                            "into indicators_dir; unset = feeds only from `fundflow indicators "
                                            "import`")
    indicator_members: str | None = _setting(None, _optional_text,
                                             "directory of the members' Ed25519 public keys, <institution>.pem "
                                             "each, that feeds from indicators_topic are verified against")
    data_dir: str = _setting(".fundflow", _text, "local state of the worker (page ledger, snapshots)")
    snapshot_interval: int = _duration_setting("60s",
                                      "how often the worker snapshots its detection state to data_dir, so a "
                                      "restart replays only the log after it; 0 = never (every start replays "
                                      "the whole window)")
    evidence_chain: bool = _setting(True, _boolean,
                                    "keep each warning's original events, rule text and a signed hash chain in the "
                                    "warning store (docs/evidence.md); false = warnings only", shown="true")
    evidence_signing_key: str | None = _setting(None, _optional_text,
                                                "PEM Ed25519 private key signing the evidence checkpoints; unset = "
                                                "data_dir/evidence/signing_key.pem, generated on first start")
    evidence_checkpoint_records: int = _setting(100, _positive_int,
                                                "chain records of an outbox partition per signed checkpoint, at most")
    evidence_checkpoint_interval: int = _duration_setting("10s",
                                                          "longest a chain record waits to be covered by a signed "
                                                          "checkpoint")

    console_host: str = _setting("127.0.0.1", _text, "address `fundflow console` listens on (127.0.0.1: this "
                                 "machine only)")
    console_port: int = _setting(8070, _port, "port of `fundflow console`")
    console_in_worker: bool = _setting(False, _boolean,
                                       "`fundflow worker` also serves the console on console_host:console_port, "
                                       "from its own process over the store it writes (the way to triage an "
                                       "embedded chDB store while the worker runs)", shown="false")
    console_tokens: str | None = _setting(None, _optional_text,
                                          "console users: NAME:ROLE:TOKEN, several separated by commas; ROLE is "
                                          "analyst or supervisor, TOKEN at least 16 characters")
    console_tokens_file: str | None = _setting(None, _optional_text,
                                               "file of console users, one NAME:ROLE:TOKEN a line (# comments)")

    @property
    def broker_bootstrap(self) -> list[str]:
        """kafka://h1:9092;h2:9092 -> ['h1:9092', 'h2:9092'] for kafka-python / aiokafka."""
        return [part.split("://", 1)[-1].rstrip("/") for part in self.broker_url.split(";")]

    def with_overrides(self, **values: Any) -> "Settings":
        return _validated(replace(self), values, source="arguments")


def load_settings(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the YAML file (if any), then `FUNDFLOW_*` variables: the last one wins."""
    env = os.environ if env is None else env
    settings = Settings()
    if path is not None:
        settings = _validated(settings, _read_file(Path(path)), source=str(path))
    known = {f.name for f in fields(Settings)}
    from_env = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key in known:
            from_env[key] = value
    return _validated(settings, from_env, source="environment", env_names=True)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SettingsError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of setting: value, got {type(data).__name__}")
    known = sorted(f.name for f in fields(Settings))
    unknown = sorted(set(map(str, data)) - set(known))
    if unknown:
        import difflib
        problems = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            problems.append(f"{path}: unknown setting {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        problems[-1] += f"; known settings: {', '.join(known)}"
        raise SettingsError("\n".join(problems))      # one line per problem, so one problem is one line
    return data


def _validated(settings: Settings, raw: Mapping[str, Any], *, source: str, env_names: bool = False) -> Settings:
    by_name = {f.name: f for f in fields(Settings)}
    parsed = {}
    problems = []                  # every bad value at once, not one per start
    for key, value in raw.items():
        spec = by_name[key]
        label = f"{ENV_PREFIX}{key.upper()}" if env_names else key
        try:
            parsed[key] = spec.metadata["parse"](value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            problems.append(f"{source}: {label}: {exc}")
    if problems:
        raise SettingsError("\n".join(problems))
    result = replace(settings, **parsed)
    if result.allowed_lateness >= result.window:
        raise SettingsError(f"{source}: allowed_lateness must be shorter than window "
                            f"(got {format_duration_ms(result.allowed_lateness)} >= "
                            f"{format_duration_ms(result.window)})")
    return result


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(setting, environment variable, default, meaning) rows, for README and `--help`."""
    return [(f.name, f"{ENV_PREFIX}{f.name.upper()}", f.metadata["shown"] or str(f.default), f.metadata["doc"])
            for f in fields(Settings)]
