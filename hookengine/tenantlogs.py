"""Tenant logs (Auth0's GET /api/v2/logs): recording events, reading and searching them.

`record()` stores an event and queues it for every active log stream in the same
transaction, so an event is never stored without being queued (or queued without being
stored), whatever happens to the process afterwards. The delivery worker (logdelivery.py)
empties the queue.
"""

from __future__ import annotations

import json
import re
import threading

from hookengine.clock import utc_now
from hookengine.errors import BadRequest, NotFound

# Auth0's log ids are 56-digit numeric strings; ours are "90" and the row's sequence number,
# zero-padded, so they sort (as text and as numbers) in the order the events were recorded.
LOG_ID_DIGITS = 56
LOG_ID_PREFIX = "90"
# Search paging reaches at most this many results (Auth0's limit); `from`/`take` goes on.
SEARCH_CAP = 1000

# Fields a query may name (Auth0's log search syntax, case-sensitive), and those a bare
# term is looked for in.
SEARCHABLE = ("client_id", "client_name", "connection", "connection_id", "description",
              "date", "hostname", "ip", "log_id", "organization_id", "user_id", "user_name",
              "user_agent", "strategy", "strategy_type", "type")
BARE_FIELDS = ("client_name", "connection", "description", "ip", "log_id", "type",
               "user_name")
# Fields kept in columns of their own (indexed); the others are read from the JSON.
COLUMNS = ("log_id", "date", "type", "user_id")

# Log stream filter categories of the event types that are not "other" (Auth0's
# "unclassified" category, where every gd_send_* event is).
CATEGORIES = {
    "s": "auth.login.success", "f": "auth.login.fail", "fp": "auth.login.fail",
    "fu": "auth.login.fail", "slo": "auth.logout.success", "flo": "auth.logout.fail",
    "ss": "auth.signup.success", "fs": "auth.signup.fail",
    "ssa": "auth.silent_auth.success", "fsa": "auth.silent_auth.fail",
    "sapi": "management.success", "fapi": "management.fail",
    "gd_start_enroll": "user.notification", "gd_enrollment_complete": "user.notification",
    "gd_unenroll": "user.notification", "gd_update_device_account": "user.notification",
}


def category_of(log_type: str) -> str:
    """The log stream filter category an event type belongs to."""
    return CATEGORIES.get(log_type, "other")


def stream_wants(filters: list[dict], log_type: str) -> bool:
    """Whether a stream with `filters` receives events of `log_type` (none: every event)."""
    return not filters or any(f.get("name") == category_of(log_type) for f in filters)


def mask_phone(number: str | None) -> str | None:
    """A phone number with every digit but the last four as X ("+XXXXXXX0123"): what the
    logs show unless the tenant flag disable_management_api_sms_obfuscation is set."""
    if number is None:
        return None
    digits = sum(ch.isdigit() for ch in number)
    seen, masked = 0, []
    for ch in number:
        if ch.isdigit():
            seen += 1
            masked.append(ch if seen > digits - 4 else "X")
        else:
            masked.append(ch)
    return "".join(masked)


def log_id_of(seq: int) -> str:
    return LOG_ID_PREFIX + str(seq).zfill(LOG_ID_DIGITS - len(LOG_ID_PREFIX))


def checkpoint(log_id: str) -> str:
    """A `from` value padded to a log id's width, so it compares with log ids as text."""
    if not re.fullmatch(r"[0-9]{1,%d}" % LOG_ID_DIGITS, log_id):
        raise BadRequest(f"from must be a log id: up to {LOG_ID_DIGITS} digits.",
                         error_code="invalid_query_string")
    return log_id.zfill(LOG_ID_DIGITS)


class TenantLogs:
    """The tenant's log events: `record`, `get`, `search` and checkpoint reads (`after`)."""

    def __init__(self, store):
        self.store = store
        # Set after every record: wakes the delivery worker (it also polls, for events other
        # processes write to the same database).
        self.recorded = threading.Event()

    def record(self, event: dict) -> dict:
        """Store `event` (it must have a `type`) with a new `log_id`/`_id` and the `date`,
        and queue it for each active log stream that wants its type; return the entry."""
        if not isinstance(event.get("type"), str) or not event["type"]:
            raise ValueError("a log event needs a type, e.g. gd_send_sms")
        data = {k: v for k, v in event.items() if k not in ("_id", "log_id", "date")}
        date = utc_now()
        with self.store.transaction() as db:
            seq = db.execute(
                "INSERT INTO logs (date, type, user_id, data) VALUES (?, ?, ?, ?) "
                "RETURNING seq", (date, data["type"], data.get("user_id"),
                                  json.dumps(data))).fetchone()[0]
            log_id = log_id_of(seq)
            db.execute("UPDATE logs SET log_id = ? WHERE seq = ?", (log_id, seq))
            streams = db.execute("SELECT id, filters FROM log_streams WHERE status = 'active'")
            db.executemany(
                "INSERT INTO log_stream_outbox (stream_id, log_seq) VALUES (?, ?)",
                [(s["id"], seq) for s in streams.fetchall()
                 if stream_wants(json.loads(s["filters"]), data["type"])])
        self.recorded.set()
        return _entry(log_id, date, data)

    def get(self, log_id: str) -> dict:
        row = self.store.query_one("SELECT log_id, date, data FROM logs WHERE log_id = ?",
                                   (log_id,))
        if row is None:
            raise NotFound("Log not found.", error_code="inexistent_log")
        return _row_entry(row)

    def search(self, query: str | None = None, *, page: int = 0, per_page: int = 50,
               ascending: bool = False) -> tuple[int, list[dict]]:
        """(matches, one page of them by date): pages reach the first SEARCH_CAP matches;
        a page past them, or past the end, is empty."""
        where, params = parse_query(query or "", self.store)
        total = self.store.query_one(f"SELECT COUNT(*) FROM logs WHERE {where}", params)[0]
        start = page * per_page
        limit = max(0, min(per_page, SEARCH_CAP - start))
        order = "ASC" if ascending else "DESC"
        rows = self.store.query(
            f"SELECT log_id, date, data FROM logs WHERE {where} "
            f"ORDER BY date {order}, seq {order} LIMIT ? OFFSET ?",
            [*params, limit, start]) if limit else []
        return total, [_row_entry(row) for row in rows]

    def after(self, log_id: str, take: int, query: str | None = None) -> list[dict]:
        """Up to `take` entries recorded after the one `log_id` names, oldest first."""
        where, params = parse_query(query or "", self.store)
        rows = self.store.query(
            f"SELECT log_id, date, data FROM logs WHERE log_id > ? AND ({where}) "
            "ORDER BY log_id LIMIT ?", [checkpoint(log_id), *params, take])
        return [_row_entry(row) for row in rows]

    def count_after(self, log_id: str) -> int:
        return self.store.query_one("SELECT COUNT(*) FROM logs WHERE log_id > ?",
                                    (checkpoint(log_id),))[0]


def _entry(log_id: str, date: str, data: dict) -> dict:
    return {"_id": log_id, "log_id": log_id, "date": date, **data}


def _row_entry(row) -> dict:
    return _entry(row["log_id"], row["date"], json.loads(row["data"]))


# --- search queries ----------------------------------------------------------------------

class QueryError(BadRequest):
    error_code = "invalid_query_string"


def parse_query(text: str, store) -> tuple[str, list]:
    """A SQL condition (and its parameters) for a query in Auth0's Lucene subset, on
    `store` (which says how its database reads JSON fields and matches wildcards).

    Supported: `field:value`, `field:"exact value"`, `*` wildcards, `field:(a OR b)`,
    ranges `field:[a TO b]` (inclusive) and `{a TO b}` (exclusive, `*` open), bare terms,
    AND / OR / NOT / `-`, parentheses. Clauses side by side must all match (AND).
    """
    parser = _Parser(text, store)
    if parser.at_end():
        return "TRUE", []
    sql = parser.or_expr(None)
    if not parser.at_end():
        parser.fail("unexpected text")
    return sql, parser.params


class _Parser:
    """Recursive descent over the query text; builds SQL with `?` parameters."""

    def __init__(self, text: str, store):
        self.text, self.pos, self.params = text, 0, []
        self.store = store

    def fail(self, what: str):
        raise QueryError(f"Invalid search query: {what} at character {self.pos + 1} of "
                         f"{self.text!r}. Searchable fields: {', '.join(SEARCHABLE)}.")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek(self, literal: str) -> bool:
        self.skip()
        return self.text.startswith(literal, self.pos)

    def keyword(self, word: str) -> bool:
        """Consume the operator `word` (a whole word) if it is next."""
        self.skip()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
                end == len(self.text) or self.text[end].isspace() or self.text[end] in "()"):
            self.pos = end
            return True
        return False

    def or_expr(self, field: str | None) -> str:
        parts = [self.and_expr(field)]
        while self.keyword("OR"):
            parts.append(self.and_expr(field))
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self, field: str | None) -> str:
        parts = [self.not_expr(field)]
        while not self.at_end() and not self.peek(")") and not self.peek_keyword("OR"):
            self.keyword("AND")
            parts.append(self.not_expr(field))
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def peek_keyword(self, word: str) -> bool:
        start = self.pos
        found = self.keyword(word)
        self.pos = start
        return found

    def not_expr(self, field: str | None) -> str:
        if self.keyword("NOT") or (self.peek("-") and self._consume("-")):
            # COALESCE: a log without the field (NULL) is one the negated clause keeps.
            return f"NOT COALESCE({self.not_expr(field)}, FALSE)"
        return self.primary(field)

    def _consume(self, literal: str) -> bool:
        self.pos += len(literal)
        return True

    def primary(self, field: str | None) -> str:
        if self.at_end():
            self.fail("a term is missing")
        if self.peek("("):
            self.pos += 1
            inner = self.or_expr(field)
            if not self.peek(")"):
                self.fail("')' is missing")
            self.pos += 1
            return f"({inner})"
        if field is None:
            named = re.compile(r"([A-Za-z_]+):").match(self.text, self.pos)
            if named:
                if named.group(1) not in SEARCHABLE:
                    self.fail(f"{named.group(1)!r} is not a searchable field")
                self.pos = named.end()
                if self.peek("[") or self.peek("{"):
                    return self.range(named.group(1))
                if self.peek("("):
                    return self.primary(named.group(1))
                return self.value(named.group(1))
        return self.value(field)

    def word(self) -> tuple[str, bool]:
        """The next value: (text, quoted)."""
        self.skip()
        if self.peek('"'):
            match = re.compile(r'"((?:[^"\\]|\\.)*)"').match(self.text, self.pos)
            if not match:
                self.fail("a closing quote is missing")
            self.pos = match.end()
            return re.sub(r"\\(.)", r"\1", match.group(1)), True
        match = re.compile(r'[^\s()"\[\]{}]+').match(self.text, self.pos)
        if not match:
            self.fail("a value is missing")
        self.pos = match.end()
        return match.group(0), False

    def value(self, field: str | None) -> str:
        text, quoted = self.word()
        fields = [field] if field else list(BARE_FIELDS)
        pieces = text.split("*") if not quoted and "*" in text else None
        if pieces is None and field == "date":  # a date matches every time within it
            pieces = [text, ""]
        clauses = [self.match(self.column(name), text, pieces) for name in fields]
        if field is None and pieces is None:
            # A bare word also finds a description that contains it (free text).
            clauses.append(self.match(self.column("description"), text, ["", text, ""]))
        return clauses[0] if len(clauses) == 1 else "(" + " OR ".join(clauses) + ")"

    def match(self, column: str, text: str, pieces: list[str] | None) -> str:
        """`column` equal to `text`, or matching the wildcard `pieces` when there are some."""
        if pieces is None:
            self.params.append(text)
            return f"{column} = ?"
        sql, pattern = self.store.wildcard_match(column, pieces)
        self.params.append(pattern)
        return sql

    def column(self, field: str) -> str:
        # `field` is always one of SEARCHABLE, so it is safe to put in the SQL text.
        return field if field in COLUMNS else self.store.json_field("data", field)

    def range(self, field: str) -> str:
        self.skip()
        opening = self.text[self.pos]
        self.pos += 1
        low, _ = self.word()
        if not self.keyword("TO"):
            self.fail("a range needs 'TO'")
        high, _ = self.word()
        self.skip()
        closing = self.text[self.pos:self.pos + 1]
        if closing not in ("]", "}"):
            self.fail("a range must end with ] or }")
        self.pos += 1
        clauses = []
        if low != "*":
            clauses.append(f"{self.column(field)} {'>=' if opening == '[' else '>'} ?")
            self.params.append(low)
        if high != "*":
            clauses.append(f"{self.column(field)} {'<=' if closing == ']' else '<'} ?")
            self.params.append(high)
        if not clauses:
            return f"{self.column(field)} IS NOT NULL"
        return "(" + " AND ".join(clauses) + ")"
