"""Structured logging: structlog for our code and the stdlib (uvicorn, SQLAlchemy) alike.

Every line goes through one processor chain, so the request id bound by the request-context
middleware and the redaction of secrets apply to uvicorn's lines too.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

REDACTED = "[REDACTED]"

# Keys whose values are secrets, wherever they appear (event dict, nested mappings, headers).
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|authorization|cookie|api[_-]?key|"
    r"card|(?:^|[_-])pan(?:$|[_-])|cvv|cvc|iban|signature|credential",
    re.IGNORECASE,
)
# Values that are secrets whatever their key: bearer credentials and JWT-shaped strings.
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# 13 to 19 digits, optionally grouped by spaces or dashes: a payment card number.
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# Every match of _CARD lies in a run of 13 or more digits, spaces and dashes: a linear scan
# for such a run rules out most text (times, UUIDs, hex ids) before _CARD's backtracking runs.
_CARD_CANDIDATE = re.compile(r"[\d -]{13,}")  # the same digits as _CARD's (any Unicode digit)
_MAX_DEPTH = 6


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return REDACTED if _luhn_valid(digits) else match.group(0)


def redact_text(text: str) -> str:
    """Mask bearer credentials, JWTs and card numbers inside free text."""
    # Cheap tests first: every log line passes here, and most values (paths, ids, times)
    # can hold none of the three. Each test is necessary for its pattern to match.
    folded = text.casefold()  # as IGNORECASE compares (U+017F, the long s, is an "s")
    if "bearer" in folded or "basic" in folded:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if _CARD_CANDIDATE.search(text):
        text = _CARD.sub(_mask_card, text)
    return text


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True when a field of that name must never be logged in clear."""
    return bool(_SENSITIVE_KEY.search(key))


# Values that can hold no secret: most fields of most lines (status, duration, counts).
_PLAIN_TYPES = frozenset({int, float, bool, type(None)})


def _redact(value: Any, depth: int = 0, limit: int = _MAX_DEPTH) -> Any:
    if type(value) in _PLAIN_TYPES or depth > limit:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and is_sensitive_key(k)
            else _redact(v, depth + 1, limit)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, depth + 1, limit) for item in value]
    return value


def redact_event(value: Any) -> Any:
    """The logs' redaction applied to any structure (an error report, say): a redacted copy.

    Error reports nest deeper than log lines (exception → values → stacktrace → frames): the
    whole structure is walked, to 32 levels.
    """
    return _redact(value, limit=32)


@functools.lru_cache(maxsize=1024)
def _any_sensitive_key(keys: tuple[str, ...]) -> bool:
    return any(is_sensitive_key(key) for key in keys)


def _nothing_to_redact(event_dict: EventDict) -> bool:
    """True when the line holds no secret: no sensitive key, flat values, no secret-like text.

    The common line (the access line: a few strings and numbers) is settled by one cached key
    check and one scan of its text; anything else takes the full walk.
    """
    texts = []
    for value in event_dict.values():
        kind = type(value)
        if kind is str:
            texts.append(value)
        elif kind not in _PLAIN_TYPES:
            return False  # nested, or a str subclass: walk it
    if _any_sensitive_key(tuple(event_dict)):
        return False
    # redact_text's tests, once over the whole line ("\n" joins: no candidate spans two fields).
    text = "\n".join(texts)
    folded = text.casefold()
    return not (
        "bearer" in folded
        or "basic" in folded
        or "eyj" in folded  # "eyJ", folded: a superset
        or _CARD_CANDIDATE.search(text)
    )


def redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: redact secrets by key name and by value pattern."""
    if _nothing_to_redact(event_dict):
        return event_dict
    for key, value in list(event_dict.items()):
        if is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(value)
    return event_dict


_OWN_PROCESSORS: list[Processor] = []


class _StderrLogger:
    """Where our own rendered lines go: whatever `sys.stderr` is at write time (tests swap it)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or "app"

    def msg(self, message: str) -> None:
        """Write one rendered line."""
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever `sys.stderr` is at emit time (test capture swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn duplicates every message with ANSI colours in this extra field.
    event_dict.pop("color_message", None)
    return event_dict


def configure_logging(*, level: str, fmt: str) -> None:
    """Route structlog and the stdlib through one chain; JSON or console rendering."""
    # The time is stamped after the redaction, which has nothing to find in it (the same
    # line: it is still the last key added).
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # Lines from the stdlib (uvicorn, SQLAlchemy): their `extra` fields, minus uvicorn's
    # coloured duplicate, are redacted like everything else.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        redact_processor,
        stamp,
    ]
    # Our own lines have no stdlib record: no `extra`, no `color_message` (one line on every
    # request, the access line, runs this chain).
    own: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        redact_processor,
        stamp,
    ]
    renderer: Processor
    if fmt == "json":
        # format_exc_info turns exc_info into a "exception" string field for the JSON line.
        final: list[Processor] = [structlog.processors.format_exc_info]
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        final = []
        # Plain tracebacks: structlog's default uses rich when it is installed, and rich shows
        # every frame's locals — one error with a large request in scope rendered tens of
        # thousands of lines, seconds of CPU on the event loop (issue 14).
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)

    # Our own lines skip the stdlib logging machinery (LogRecord, handler, formatter): they are
    # rendered by structlog and written once. The access line runs on every request, and the
    # stdlib path was most of the cost of the cheapest one (issue 14). The list is mutated in
    # place, because loggers cached on first use keep a reference to it.
    _OWN_PROCESSORS[:] = [
        *own,
        structlog.processors.StackInfoRenderer(),
        *final,
        _redact_exception_field,
        renderer,
    ]
    structlog.configure(
        processors=_OWN_PROCESSORS,
        logger_factory=_StderrLogger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
            # Exception text can carry secrets too: redact after it is rendered.
            _redact_exception_field,
            renderer,
        ],
    )
    config: MutableMapping[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": lambda: formatter}},
        "handlers": {
            "default": {"()": StderrHandler, "formatter": "structlog"},
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn's own handlers are replaced: its lines flow through ours.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # The request-context middleware writes the access log, with the route template.
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            "sqlalchemy.engine": {"level": "WARNING"},
        },
    }
    logging.config.dictConfig(dict(config))


@functools.cache
def _json_encoder(default: Callable[[Any], Any]) -> json.JSONEncoder:
    return json.JSONEncoder(default=default)


def _json_dumps(obj: Any, *, default: Callable[[Any], Any]) -> str:
    """One JSON line, by orjson (a fifth of the stdlib encoder's time on an access line).

    What orjson refuses (an integer beyond 64 bits, a key that is not a string) is encoded by
    the stdlib instead: a log line never fails to render.
    """
    try:
        return orjson.dumps(obj, default=default).decode()
    except orjson.JSONEncodeError:
        return _json_encoder(default).encode(obj)


def _redact_exception_field(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = redact_text(exception)
    return event_dict


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger named after its module."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger
