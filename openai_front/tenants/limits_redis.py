"""The counters in Redis, shared by every replica of the front: each check and each charge is one Lua
script (EVALSHA), so that concurrent requests on any replicas are counted one at a time, per key.

Keys (hash-tagged by key hash, so that a key's counters sit on one Redis Cluster slot):
`tmr:tenant:{h}:rpm` (sorted set of admission times), `:tpm` (hash: second -> tokens charged),
`:spent:<day or month>` (tokens charged in that UTC period).
"""
from __future__ import annotations

import math
import os

from .keys import TenantKey
from .limits import WINDOW_S, Admission, Admitted, charged, period_of, periods, refused
from .outage import connect
from .usage import RedisUsage, Usage

DAY_TTL_S, MONTH_TTL_S = 2 * 86400, 32 * 86400  # a period's spent tokens outlive it a little

# KEYS: spent (the key's period), tpm, rpm. ARGV: now, budget, tpm, rpm (0: no limit), a unique member.
# Returns {field at fault or '', seconds until it frees}.
ADMIT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[6])
local budget, tpm, rpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if budget > 0 and tonumber(redis.call('GET', KEYS[1]) or '0') >= budget then
  return {'budget_tokens', '0'}
end
if tpm > 0 then
  local first, buckets, used = math.floor(now) - window + 1, {}, 0
  local fields = redis.call('HGETALL', KEYS[2])
  for i = 1, #fields, 2 do
    local second, tokens = tonumber(fields[i]), tonumber(fields[i + 1])
    if second >= first then
      table.insert(buckets, {second, tokens})
      used = used + tokens
    end
  end
  if used >= tpm then
    table.sort(buckets, function(a, b) return a[1] < b[1] end)
    for _, bucket in ipairs(buckets) do
      used = used - bucket[2]
      if used < tpm then return {'tpm', tostring(bucket[1] + window - now)} end
    end
  end
end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  if redis.call('ZCARD', KEYS[3]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {'rpm', tostring(tonumber(oldest[2]) + window - now)}
  end
  redis.call('ZADD', KEYS[3], now, ARGV[5])
  redis.call('EXPIRE', KEYS[3], 2 * window)
end
return {'', '0'}
"""

# KEYS: tpm, spent (day), spent (month). ARGV: second, tokens, window, day ttl, month ttl.
CHARGE = """
local second, window = tonumber(ARGV[1]), tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HLEN', KEYS[1]) > window then
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if tonumber(field) <= second - window then redis.call('HDEL', KEYS[1], field) end
  end
end
redis.call('EXPIRE', KEYS[1], 2 * window)
redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('INCRBY', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return 1
"""


def counter_key(key_hash: str, what: str) -> str:
    return f"tmr:tenant:{{{key_hash}}}:{what}"


class RedisCounters:
    """Counters every replica shares, in the Redis at `url`. Redis errors are raised (see Degrading)."""

    def __init__(self, url: str, timeout_s: float = 1.0, usage: Usage | None = None) -> None:
        self._redis = connect(url, timeout_s)
        self._admit = self._redis.register_script(ADMIT)
        self._charge = self._redis.register_script(CHARGE)
        self.usage = usage or RedisUsage(self._redis)

    def admit(self, key_hash: str, key: TenantKey, now: float) -> Admission:
        if not key.limited:
            return Admitted()  # no counter to ask
        period, ends_in = period_of(key, now)
        keys = [counter_key(key_hash, f"spent:{period}"), counter_key(key_hash, "tpm"), counter_key(key_hash, "rpm")]
        member = f"{now!r}:{os.urandom(6).hex()}"  # two admissions at one instant are two members
        field, wait = self._admit(keys=keys, args=[repr(now), key.budget_tokens or 0, key.tpm or 0, key.rpm or 0,
                                                   member, WINDOW_S])
        if not field:
            return Admitted()
        return refused(key, field, ends_in if field == "budget_tokens" else float(wait))

    def charge(self, key_hash: str, key: TenantKey, model: str | None, prompt_tokens: int, completion_tokens: int,
               cached: bool, error: bool, now: float) -> None:
        tokens = charged(prompt_tokens, completion_tokens, cached)
        if tokens:
            day, month = periods(now)
            keys = [counter_key(key_hash, "tpm"), counter_key(key_hash, f"spent:{day}"),
                    counter_key(key_hash, f"spent:{month}")]
            self._charge(keys=keys, args=[math.floor(now), tokens, WINDOW_S, DAY_TTL_S, MONTH_TTL_S])
        self.usage.record(key.name, model, now, prompt_tokens, completion_tokens, cached, error)

    def spent(self, key_hash: str, key: TenantKey, now: float) -> int:
        """Tokens charged to the key in its current period."""
        return int(self._redis.get(counter_key(key_hash, f"spent:{period_of(key, now)[0]}")) or 0)

    def close(self) -> None:
        self._redis.close()

