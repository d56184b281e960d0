"""A budget ledger shared by every process: Redis (single node, Sentinel or Cluster) through redis-py.

Layout: one integer per budget, key and period slot, ``aimon:{budgets}:<budget>|<slot start>|<key>``
(nano-USD or tokens), with ``EXPIREAT`` a day past the period's end; a marker
``aimon:{budgets}:call:<call id>`` (one hour) makes a retried settle count once; a hash
``aimon:{budgets}:hold:<call id>`` records what a call in flight holds, slot by slot; ``est|<budget>``
is the budget's running estimate of a call. Every key carries the hash tag ``{budgets}``, so on
Redis Cluster they all live in one slot and the scripts, which touch several budgets' keys, run
atomically on one node.

The app's call pays one round trip: the check, a script that reads every matching ``block``
budget's slots and the limit in force (plus what this process has queued and not yet written),
refuses, or holds the call's estimate in each budget and records the hold. Every check in every
process therefore counts the calls in flight at their estimate, so the settle need not be waited
for: a writer thread sends the settles in order, several per round trip when they queue up, each
under its call id, so a settle that is retried (a timeout, Redis away) is counted once. A settle
gives back what the hold record says was held, not what this process was told, so an answer lost
on the way back cannot count a call twice. A hold whose call never settles (its process died)
stays: the call is counted at its estimate (see ``ledger``).

Unreachable Redis: with ``fail="open"`` (the default) calls go through, the check uses the last
values this process read plus what it added since, and the writer keeps the settles and sends them
when Redis answers again (tried once a second); a warning is logged once a minute.
``fail="closed"`` refuses calls instead; spend is still kept and written later.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import redis
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aimon_otel.budgets.ledger import (
    ESTIMATE_DECAY,
    HISTORY_KEPT,
    Done,
    Entry,
    Hold,
    Increment,
    LedgerUnavailableError,
    Refused,
    Release,
    Setting,
    Settlement,
    limit_in_force,
    refuses,
)
from aimon_otel.faults import report_fault

logger = logging.getLogger("aimon_otel")

PREFIX = "aimon:{budgets}:"
CALL_MARKER_SECONDS = 3600
"""How long a call's marker lives: retries of an add whose answer was lost come within seconds (the
writer retries every second), so an hour is ample, and the markers of a busy day do not pile up."""
RETRY_SECONDS = 1.0
WARN_SECONDS = 60.0
MAX_PENDING = 100_000
"""Calls kept while Redis is away; past this, the oldest are merged into one entry (amounts are never dropped)."""
BATCH = 256
"""Adds sent per round trip when they queue up."""
ESTIMATE_SECONDS = 40 * 86400
"""A budget's running estimate is forgotten after this long without a guarded call."""
HOLD_RECORD_SECONDS = 40 * 86400
"""How long a hold record of credit budgets alone (which never expire) is kept if its call never settles."""
MAX_COMMANDS = 4096
"""Checks whose command is kept (one per kind of call in use: its budgets, keys and ``max_tokens`` floor)."""
EXACT_QUEUE = 64
"""Up to this many queued adds, a check asks Redis which of them are in (exact); past it, counts them all."""

# The settle. KEYS: the call's marker; per release, the hold record then its r_j slots; n slots to add to;
# m running-estimate slots; then the slots whose totals to return. ARGV: n, m, r, each r_j, n amounts, n expiry
# times (epoch seconds; 0: never, a credit balance), the marker's lifetime (0: a release alone, no marker), m
# amounts. A release gives back what the hold record says was held (DECRBY its string: exact past 2^53).
_ADD = """
local n, m, r = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local k, a = 2, 4
local holds = {}
for j = 1, r do
  holds[j] = {k, tonumber(ARGV[a])}
  k = k + 1 + tonumber(ARGV[a])
  a = a + 1
end
local ttl = ARGV[a + 2 * n]
if ttl == '0' or redis.call('SET', KEYS[1], '1', 'NX', 'EX', ttl) then
  for j = 1, r do
    local record, count = holds[j][1], holds[j][2]
    for i = 1, count do
      local held = redis.call('HGET', KEYS[record], KEYS[record + i])
      if held then redis.call('DECRBY', KEYS[record + i], held) end
    end
    redis.call('DEL', KEYS[record])
  end
  for i = 0, n - 1 do
    redis.call('INCRBY', KEYS[k + i], ARGV[a + i])
    if ARGV[a + n + i] ~= '0' then
      redis.call('EXPIREAT', KEYS[k + i], ARGV[a + n + i])
    end
  end
  for i = 0, m - 1 do
    local known = tonumber(redis.call('GET', KEYS[k + n + i]) or '0')
    local amount = tonumber(ARGV[a + 2 * n + 1 + i])
    if amount < known then amount = known + math.floor((amount - known) / DECAY) end
    redis.call('SET', KEYS[k + n + i], string.format('%.0f', amount), 'EX', KEPT)
  end
end
local totals = {}
for i = k + n + m, #KEYS do
  totals[#totals + 1] = redis.call('GET', KEYS[i]) or '0'
end
return totals
""".replace("DECAY", str(ESTIMATE_DECAY)).replace("KEPT", str(ESTIMATE_SECONDS))


# The check: one MGET, then at most one INCRBY (and EXPIREAT for a new slot) per hold and one HSET of the record.
# KEYS: the hold record; per hold, its s spend slots, its t settings, its estimate slot; then the call
# markers of queued settles. ARGV: holds, queued, the record's expiry; per hold: s, t, past, limit, credit (0/1),
# least, fits (0/1), expiry (0: never), p, p (plan code, limit) pairs; per queued settle: d, d (hold index, amount)
# pairs, counted when its marker is not in yet. Returns {index, spent, limit} of a refusing hold, else {0, held...}.
# Sums are Lua numbers (doubles): exact to 2^53 nano-USD ($9M) per budget; amounts written go as strings.
_RESERVE = """
local count, queued = tonumber(ARGV[1]), tonumber(ARGV[2])
local values = redis.call('MGET', unpack(KEYS, 2))
local k, a = 1, 4
local holds = {}
for h = 1, count do
  local s, t = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local hold = {slot = KEYS[k + 1], spent = tonumber(ARGV[a + 2]), limit = tonumber(ARGV[a + 3]),
    credit = ARGV[a + 4] == '1', least = tonumber(ARGV[a + 5]), fits = ARGV[a + 6] == '1', expires = ARGV[a + 7]}
  local plans = tonumber(ARGV[a + 8])
  a = a + 9
  for i = k, k + s - 1 do
    if values[i] then hold.spent = hold.spent + tonumber(values[i]) end
  end
  k = k + s
  if t > 0 then
    if values[k] and tonumber(values[k]) > 0 then
      hold.limit = tonumber(values[k]) - 1
    elseif t > 1 and values[k + 1] then
      for i = 0, plans - 1 do
        if ARGV[a + 2 * i] == values[k + 1] then hold.limit = tonumber(ARGV[a + 2 * i + 1]) end
      end
    end
  end
  a = a + 2 * plans
  k = k + t
  hold.estimate = tonumber(values[k] or '0')
  k = k + 1
  holds[h] = hold
end
for q = 1, queued do
  local d = tonumber(ARGV[a])
  if values[k] == false then
    for i = 0, d - 1 do
      local hold = holds[tonumber(ARGV[a + 1 + 2 * i])]
      hold.spent = hold.spent + tonumber(ARGV[a + 2 + 2 * i])
    end
  end
  k = k + 1
  a = a + 1 + 2 * d
end
for h = 1, count do
  local hold = holds[h]
  local refused
  if hold.credit then
    refused = hold.spent <= hold.limit
  else
    refused = hold.spent >= hold.limit or (hold.fits and hold.spent + hold.least > hold.limit)
  end
  if refused then
    return {h, string.format('%.0f', hold.spent), string.format('%.0f', hold.limit)}
  end
end
local answer = {0}
local record = {}
for h = 1, count do
  local hold = holds[h]
  local amount = math.max(hold.least, hold.estimate)
  if hold.credit then amount = -amount end
  local text = string.format('%.0f', amount)
  if amount ~= 0 then
    if redis.call('INCRBY', hold.slot, text) == amount and hold.expires ~= '0' then
      redis.call('EXPIREAT', hold.slot, hold.expires)  -- a new slot (a settle renews it)
    end
    record[#record + 1] = hold.slot
    record[#record + 1] = text
  end
  answer[h + 1] = text
end
if #record > 0 then
  redis.call('HSET', KEYS[1], unpack(record))
  redis.call('EXPIREAT', KEYS[1], ARGV[3])
end
return answer
"""


# KEYS: n slots, then the call markers of queued adds. ARGV: n. Returns each slot's value, then 1 or 0
# for each marker: whether that add is already in.
_READ = """
local n = tonumber(ARGV[1])
local answer = {}
for i = 1, n do
  answer[i] = redis.call('GET', KEYS[i]) or '0'
end
for i = n + 1, #KEYS do
  answer[i] = tostring(redis.call('EXISTS', KEYS[i]))
end
return answer
"""


# KEYS: n setting slots, their n meta keys, then m audit trails. ARGV: n, m, then (value, pexpireat, meta) per
# setting ('' value: clear it; '' pexpireat: no end), (setting index, entry JSON) per entry, the entries kept.
# Returns each setting's old meta ('' when none). cjson only for the entries, whose amounts are strings.
_CHANGE = """
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local old = {}
for i = 1, n do
  old[i] = redis.call('GET', KEYS[n + i])
  local at = 2 + 3 * (i - 1)
  local value, expires, meta = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if value == '' then
    redis.call('DEL', KEYS[i], KEYS[n + i])
  else
    redis.call('SET', KEYS[i], value)
    redis.call('SET', KEYS[n + i], meta)
    if expires ~= '' then
      redis.call('PEXPIREAT', KEYS[i], expires)
      redis.call('PEXPIREAT', KEYS[n + i], expires)
    end
  end
end
local base = 2 + 3 * n
local kept = tonumber(ARGV[base + 2 * m + 1])
for j = 1, m do
  local entry = cjson.decode(ARGV[base + 2 * (j - 1) + 2])
  local before = old[tonumber(ARGV[base + 2 * (j - 1) + 1])]
  if before then entry['old'] = cjson.decode(before) else entry['old'] = cjson.null end
  redis.call('LPUSH', KEYS[2 * n + j], cjson.encode(entry))
  redis.call('LTRIM', KEYS[2 * n + j], 0, kept - 1)
end
local answer = {}
for i = 1, n do answer[i] = old[i] or '' end
return answer
"""


# KEYS: the balance, the reference's marker, the audit trail. ARGV: amount, the top-up's record, its entry,
# entries kept. Returns the reference's first record ('' when new) and the balance after.
_TOP_UP = """
local first = redis.call('GET', KEYS[2])
if first then
  return {first, redis.call('GET', KEYS[1]) or '0'}
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('INCRBY', KEYS[1], ARGV[1])
local balance = redis.call('GET', KEYS[1])  -- as Redis holds it: Lua's tostring of a number says 1e+15
local entry = cjson.decode(ARGV[3])
entry['balance'] = balance
redis.call('LPUSH', KEYS[3], cjson.encode(entry))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
return {'', balance}
"""


class RedisLedger:
    settings_version = None
    """Another process may set a plan or limit at any moment: the guard reads them with the spend on every call
    (in the same script, so no round trip)."""
    settings_until = math.inf
    past_slots_final = False
    """Other processes, on other clocks, may still add to a bucket this one has left."""

    def __init__(self, client: Any, *, fail_closed: bool = False, description: str = "redis") -> None:
        self.client = client
        self.fail_closed = fail_closed
        self.description = description
        self._add = client.register_script(_ADD)
        self._reserve = client.register_script(_RESERVE)
        self._read = client.register_script(_READ)
        self._change = client.register_script(_CHANGE)
        self._top_up = client.register_script(_TOP_UP)
        self._lock = threading.Condition()
        self._commands: dict[int, tuple[Sequence[Hold], list[str], list[Any], list[int]]] = {}
        self._known: dict[str, int] = {}
        """Each slot's value as last read: the check's view while Redis is away."""
        self._queue: deque[_Add] = deque()
        self._unwritten: dict[str, int] = {}
        """What this process has queued per slot and Redis has not confirmed: part of every check."""
        self._writer: threading.Thread | None = None
        self._writer_pid = 0
        self._closing = False
        self._down_until = 0.0
        self._warned_at = -WARN_SECONDS
        atexit.register(self.flush, 2.0)

    @classmethod
    def from_url(cls, url: str, *, fail_closed: bool = False) -> RedisLedger:
        """``redis://``, ``rediss://``, ``unix://`` (redis-py's own URLs, with its query options),
        ``redis+sentinel://host:26379[,host2:26379]/service-name[/db]`` or ``redis+cluster://host:port``."""
        timeouts = {"socket_timeout": 0.5, "socket_connect_timeout": 0.25}
        parts = urlsplit(url)
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        for name in timeouts:
            if name in options:
                timeouts[name] = float(options[name])
        if parts.scheme == "redis+sentinel":
            from redis.sentinel import Sentinel

            hosts = [_host_port(item, 26379) for item in parts.netloc.rsplit("@", 1)[-1].split(",")]
            path = [piece for piece in parts.path.split("/") if piece]
            if not path:
                raise ValueError(f"{url}: name the Sentinel service, e.g. redis+sentinel://host:26379/mymaster/0")
            db = int(path[1]) if len(path) > 1 else 0
            sentinel = Sentinel(hosts, sentinel_kwargs={"socket_timeout": timeouts["socket_timeout"]}, **timeouts)  # type: ignore[no-untyped-call]
            client = sentinel.master_for(path[0], db=db, password=parts.password, **timeouts)  # type: ignore[no-untyped-call]
        elif parts.scheme == "redis+cluster":
            from redis.cluster import RedisCluster

            client = RedisCluster.from_url("redis://" + url.split("://", 1)[1], **timeouts)
        else:
            client = redis.Redis.from_url(url, **timeouts)
        return cls(client, fail_closed=fail_closed, description=_without_password(url))

    # -- the Ledger protocol ----------------------------------------------------------------------

    def read(self, slots: Sequence[str]) -> list[int]:
        if not slots:
            return []
        if time.monotonic() >= self._down_until:
            try:
                return self._read_with_queued(slots)
            except RedisError as error:
                self._went_away(error)
        if self.fail_closed:
            raise LedgerUnavailableError(f"the budget ledger at {self.description} does not answer")
        with self._lock:
            return [self._known.get(slot, 0) + self._unwritten.get(slot, 0) for slot in slots]

    def reserve(self, call_id: str, holds: Sequence[Hold]) -> tuple[int, ...]:
        if time.monotonic() >= self._down_until:
            try:
                return self._reserve_in_redis(call_id, holds)
            except RedisError as error:
                self._went_away(error)
                if self.fail_closed and isinstance(error, RedisTimeoutError):  # the hold may be in: give it back
                    self._enqueue(_Add(call_id, (), (), None, (_release(call_id, holds),), (), True))
        if self.fail_closed:
            raise LedgerUnavailableError(f"the budget ledger at {self.description} does not answer")
        with self._lock:  # the last values read plus what this process added since; nothing held
            known, unwritten = self._known, self._unwritten
            for index, hold in enumerate(holds):
                spent = hold.past + sum(known.get(slot, 0) + unwritten.get(slot, 0) for slot in hold.spend)
                settings = [known.get(slot, 0) for slot in hold.settings]
                limit = limit_in_force(hold, settings) if settings else hold.limit
                if refuses(hold, spent, limit):
                    raise Refused(index, spent, limit)
        return (0,) * len(holds)

    def _reserve_in_redis(self, call_id: str, holds: Sequence[Hold]) -> tuple[int, ...]:
        known = self._commands.get(id(holds))
        if known is None or known[0] is not holds:
            known = self._command(holds)
        _, hold_keys, hold_args, positions = known
        keys = [PREFIX + "hold:" + call_id, *hold_keys]
        args = list(hold_args)
        if not args[2]:  # credit budgets alone never expire: their hold record goes some time after this call
            args[2] = int(time.time()) + HOLD_RECORD_SECONDS
        if self._unwritten:
            self._add_queued(holds, keys, args, positions)
        try:
            answer = self.client.evalsha(self._reserve.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted Redis: load it and ask again (the script had not run)
            self.client.script_load(_RESERVE)
            answer = self.client.evalsha(self._reserve.sha, len(keys), *keys, *args)
        index = int(answer[0])
        if index:
            raise Refused(index - 1, int(answer[1]), int(answer[2]))
        return tuple(int(amount) for amount in answer[1:])

    def _command(self, holds: Sequence[Hold]) -> tuple[Sequence[Hold], list[str], list[Any], list[int]]:
        """The check script's keys (after the hold record's) and arguments for these holds, made once: the guard
        hands the same holds again while their windows, past spend and ``max_tokens`` floor stay the same."""
        keys: list[str] = []
        args: list[Any] = [len(holds), 0, 0]
        positions: list[int] = []
        """Where each hold's ``past`` is in ``args``."""
        latest = 0
        for hold in holds:
            keys += [PREFIX + slot for slot in hold.spend] + [PREFIX + slot for slot in hold.settings]
            keys.append(PREFIX + hold.estimate)
            expires = int(hold.expires_at) if hold.expires_at != math.inf else 0
            plans = hold.plans if len(hold.settings) > 1 else {}
            positions.append(len(args) + 2)
            args += [len(hold.spend), len(hold.settings), hold.past, hold.limit, int(hold.credit), hold.least]
            args += [int(hold.fits), expires, len(plans), *itertools.chain.from_iterable(plans.items())]
            latest = max(latest, expires)
        args[2] = latest  # 0: set per call
        if len(self._commands) >= MAX_COMMANDS:
            self._commands.clear()
        known = (holds, keys, args, positions)
        self._commands[id(holds)] = known  # the holds kept with their id: the id cannot be reused meanwhile
        return known

    def _add_queued(self, holds: Sequence[Hold], keys: list[Any], args: list[Any], positions: list[int]) -> None:
        """This process's settles not yet in Redis, counted in the check: each, in the same atomic step, only if
        its marker is not in yet (exact); past ``EXACT_QUEUE`` of them, all of them (errs on the side of more)."""
        where = {slot: index for index, hold in enumerate(holds) for slot in hold.spend}
        with self._lock:
            if self._unwritten.keys().isdisjoint(where):
                return
            if len(self._queue) > EXACT_QUEUE:
                extra = [0] * len(holds)
                for slot, amount in self._unwritten.items():
                    index = where.get(slot)
                    if index is not None:
                        extra[index] += amount
                for index, amount in enumerate(extra):
                    args[positions[index]] += amount
                return
            queued = [
                (item, [(where[slot] + 1, amount) for slot, amount in item.deltas if slot in where])
                for item in self._queue
            ]
        for item, deltas in queued:
            if deltas:
                keys.append(PREFIX + "call:" + item.call_id)
                args.append(len(deltas))
                for index, amount in deltas:
                    args += [index, amount]
                args[1] += 1

    def add(
        self,
        call_id: str,
        settlement: Settlement,
        amounts: Sequence[int],
        done: Done | None = None,
        release: Release | None = None,
        teach: Sequence[int] = (),
    ) -> None:
        increments = [
            Increment(slot, amount, expires_at)
            for slot, amount, expires_at in zip(settlement.slots, amounts, settlement.expiries, strict=False)
            if amount
        ]
        releases = (release,) if release is not None else ()
        totals_of = settlement.totals_of if done is not None else ()
        estimates = (
            tuple((slot, amount) for slot, amount in zip(settlement.estimates, teach, strict=False) if amount >= 0)
            if teach
            else ()
        )
        self._enqueue(_Add(call_id, tuple(increments), totals_of, done, releases, estimates))

    def _enqueue(self, item: _Add) -> None:
        with self._lock:
            if len(self._queue) >= MAX_PENDING:
                self._merge_oldest()
            self._queue.append(item)
            unwritten = self._unwritten
            for slot, amount in item.deltas:
                left = unwritten.get(slot, 0) + amount
                if left:
                    unwritten[slot] = left
                else:
                    unwritten.pop(slot, None)
            self._lock.notify()
        if self._writer_pid != os.getpid():
            self._start_writer()

    def _read_with_queued(self, slots: Sequence[str]) -> list[int]:
        """The slots' values plus this process's adds not yet written, each counted exactly once.

        An add the writer is sending right now may or may not be in Redis when we read: the read asks
        Redis, in the same atomic step, whether each queued add's call marker exists, and counts
        only those that do not. A long queue (Redis was away) is counted whole instead: it errs on
        the side of more, and only while the writer catches up."""
        wanted = set(slots)
        with self._lock:
            unwritten = self._unwritten
            if not unwritten or wanted.isdisjoint(unwritten):
                queued: list[_Add] | None = []
            elif len(self._queue) <= EXACT_QUEUE:
                queued = [item for item in self._queue if any(slot in wanted for slot, _ in item.deltas)]
            else:
                queued = None
                extra = [unwritten.get(slot, 0) for slot in slots]
        if queued == []:
            raw = self.client.mget([PREFIX + slot for slot in slots])
            values = [int(value) if value is not None else 0 for value in raw]
        elif queued is None:
            raw = self.client.mget([PREFIX + slot for slot in slots])
            values = [(int(value) if value is not None else 0) + more for value, more in zip(raw, extra, strict=True)]
        else:
            keys = [PREFIX + slot for slot in slots] + [PREFIX + "call:" + item.call_id for item in queued]
            answer = self._read(keys=keys, args=[len(slots)])
            values = [int(value) for value in answer[: len(slots)]]
            position = {slot: index for index, slot in enumerate(slots)}
            for item, landed in zip(queued, answer[len(slots) :], strict=True):
                if int(landed):
                    continue
                for slot, amount in item.deltas:
                    index = position.get(slot)
                    if index is not None:
                        values[index] += amount
        with self._lock:
            self._remember(slots, values)
        return values

    def slots(self, prefix: str) -> list[str]:
        pattern = PREFIX + _glob_escape(prefix) + "*"
        return [key.decode()[len(PREFIX) :] for key in self.client.scan_iter(match=pattern, count=1000)]

    def change(self, settings: Sequence[Setting], entries: Sequence[Entry]) -> list[str | None]:
        """Plans, per-key limits and their audit entries: written at once (an admin's action, not a call's)."""
        keys = [PREFIX + s.slot for s in settings] + [PREFIX + "meta|" + s.slot for s in settings]
        keys += [PREFIX + "trail|" + e.trail for e in entries]
        args: list[Any] = [len(settings), len(entries)]
        for setting in settings:
            expires = "" if setting.expires_at is None else str(int(setting.expires_at * 1000))
            value = "" if setting.value is None else str(setting.value)
            args += [value, expires, setting.meta or ""]
        for entry in entries:
            args += [entry.setting + 1, entry.entry]
        args.append(HISTORY_KEPT)
        answer = self._change(keys=keys, args=args)
        return [_text(old) or None for old in answer]

    def top_up(
        self, slot: str, amount: int, reference: str, record: str, trail: str, entry: str
    ) -> tuple[str | None, int]:
        """Credits added once per reference, even when two processes send it at once (one script)."""
        keys = [PREFIX + slot, PREFIX + "meta|" + reference, PREFIX + "trail|" + trail]
        first, balance = self._top_up(keys=keys, args=[amount, record, entry, HISTORY_KEPT])
        return (_text(first) or None), int(balance)

    def metas(self, prefix: str) -> dict[str, str]:
        pattern = PREFIX + "meta|" + _glob_escape(prefix) + "*"
        keys = list(self.client.scan_iter(match=pattern, count=1000))
        if not keys:
            return {}
        start = len(PREFIX + "meta|")
        return {
            _text(key)[start:]: _text(value) for key, value in zip(keys, self.client.mget(keys), strict=True) if value
        }

    def trail(self, name: str, count: int = HISTORY_KEPT) -> list[str]:
        return [_text(entry) for entry in self.client.lrange(PREFIX + "trail|" + name, 0, count - 1)]

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued add is in Redis (True), or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._queue:
                self._down_until = 0.0  # try now rather than at the next retry
                self._lock.notify()
            while self._queue and self._writer_pid == os.getpid():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
            return not self._queue

    def close(self) -> None:
        """Write what is queued (waiting up to 10 s), stop the writer, let the connections go."""
        self.flush()
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        writer = self._writer
        if writer is not None and self._writer_pid == os.getpid():
            writer.join(timeout=2)
        atexit.unregister(self.flush)
        self.client.close()

    @property
    def pending(self) -> int:
        """Calls counted here and not yet confirmed by Redis."""
        return len(self._queue)

    # -- the writer -------------------------------------------------------------------------------

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer_pid == os.getpid():
                return
            if self._writer_pid:  # a forked child: the parent's writer thread and its queue are not ours
                self._queue.clear()
                self._unwritten.clear()
            self._writer_pid = os.getpid()
            self._writer = threading.Thread(target=self._write, name="aimon-budget-ledger", daemon=True)
            self._writer.start()

    def _write(self) -> None:
        while True:
            with self._lock:
                while not self._closing and (not self._queue or time.monotonic() < self._down_until):
                    wait = self._down_until - time.monotonic() if self._queue else None
                    self._lock.wait(wait if wait is None or wait > 0 else 0.01)
                if self._closing and (not self._queue or time.monotonic() < self._down_until):
                    return
                batch = list(itertools.islice(self._queue, BATCH))
            try:
                results = self._send(batch)
            except RedisError as error:
                self._went_away(error)
                continue
            with self._lock:
                for _ in batch:
                    self._queue.popleft()
                unwritten = self._unwritten
                for item in batch:
                    for slot, amount in item.deltas:
                        left = unwritten.get(slot, 0) - amount
                        if left:
                            unwritten[slot] = left
                        else:
                            unwritten.pop(slot, None)
                if self._down_until:
                    self._down_until = 0.0
                    logger.warning(
                        "aimon-otel: the budget ledger at %s answers again; spend kept meanwhile is counted",
                        self.description,
                    )
                self._lock.notify_all()
            for item, totals in zip(batch, results, strict=True):
                _tell(item, totals)

    def _send(self, batch: list[_Add]) -> list[list[int]]:
        """The adds in one round trip (one ``EVALSHA``, or a pipeline of them); each returns its totals.

        Not redis-py's pipelined ``Script``, which asks ``SCRIPT EXISTS`` first (a second round trip):
        a Redis that lost the script (a restart) answers NOSCRIPT, and the batch is sent again after
        loading it; the call markers make that harmless."""
        commands = [_add_command(item) for item in batch]
        try:
            raw = self._evalsha(commands)
        except NoScriptError:
            self.client.script_load(_ADD)
            raw = self._evalsha(commands)
        results = [[int(value) for value in totals] for totals in raw]
        with self._lock:
            for item, totals in zip(batch, results, strict=True):
                self._remember(item.totals_of, totals)
        return results

    def _evalsha(self, commands: list[list[Any]]) -> list[Any]:
        sha = self._add.sha
        if len(commands) == 1:
            return [self.client.evalsha(sha, *commands[0])]
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.evalsha(sha, *command)
        return list(pipe.execute())

    def _remember(self, slots: Sequence[str], values: Sequence[int]) -> None:
        known = self._known
        if len(known) > MAX_PENDING:
            known.clear()
        for slot, value in zip(slots, values, strict=True):
            known[slot] = value

    def _merge_oldest(self) -> None:
        """The queue is full: merge its two oldest settles into one (amounts and releases kept; their events
        and estimates are not sent)."""
        first = self._queue.popleft()
        second = self._queue.popleft()
        merged: dict[str, Increment] = {}
        for increment in (*first.increments, *second.increments):
            known = merged.get(increment.slot)
            merged[increment.slot] = (
                increment
                if known is None
                else Increment(
                    increment.slot, known.amount + increment.amount, max(known.expires_at, increment.expires_at)
                )
            )
        releases = first.releases + second.releases
        self._queue.appendleft(_Add(first.call_id, tuple(merged.values()), (), None, releases, (), first.release_only))

    def _went_away(self, error: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + RETRY_SECONDS
        if now - self._warned_at >= WARN_SECONDS:
            self._warned_at = now
            mode = (
                "refusing calls that a block budget covers (AIMON_BUDGET_FAIL=closed)"
                if self.fail_closed
                else "letting calls through and counting their spend here until it answers (AIMON_BUDGET_FAIL=open)"
            )
            logger.warning(
                "aimon-otel: the budget ledger at %s does not answer (%s); %s; logged once a minute",
                self.description,
                error,
                mode,
            )


class _Add(NamedTuple):
    call_id: str
    increments: tuple[Increment, ...]
    totals_of: tuple[str, ...]
    done: Done | None
    releases: tuple[Release, ...] = ()
    estimates: tuple[tuple[str, int], ...] = ()
    release_only: bool = False
    """A hold given back with nothing counted (a check whose answer was lost, then refused): no call marker."""

    @property
    def deltas(self) -> list[tuple[str, int]]:
        """What this settle changes per slot as this process knows it: its amounts, less what it releases."""
        changes = [(increment.slot, increment.amount) for increment in self.increments]
        for release in self.releases:
            changes += [(slot, -held) for slot, held in zip(release.slots, release.held, strict=True) if held]
        return changes


def _add_command(item: _Add) -> list[Any]:
    """``numkeys, keys..., args...`` of the settle script for one call."""
    keys = [PREFIX + "call:" + item.call_id]
    args: list[Any] = [len(item.increments), len(item.estimates), len(item.releases)]
    for release in item.releases:
        keys.append(PREFIX + "hold:" + release.call_id)
        keys += [PREFIX + slot for slot in release.slots]
        args.append(len(release.slots))
    keys += [PREFIX + increment.slot for increment in item.increments]
    keys += [PREFIX + slot for slot, _ in item.estimates]
    keys += [PREFIX + slot for slot in item.totals_of]
    args += [increment.amount for increment in item.increments]
    args += [int(i.expires_at) if i.expires_at != math.inf else 0 for i in item.increments]
    args.append(0 if item.release_only else CALL_MARKER_SECONDS)
    args += [amount for _, amount in item.estimates]
    return [len(keys), *keys, *args]


def _release(call_id: str, holds: Sequence[Hold]) -> Release:
    return Release(call_id, tuple(hold.spend[0] for hold in holds), (0,) * len(holds))


def _tell(item: _Add, totals: list[int]) -> None:
    if item.done is not None:
        try:
            item.done(totals)
        except Exception as fault:
            report_fault("budget events", fault)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return (host or text), int(port) if port else default_port


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
