"""The Lua scripts of the Redis counter store: each runs atomically inside Redis.

BATCH applies the settlements and then checks and charges the admissions (each one's rate
limits, budget holds and concurrency slot, all or nothing) that queued on an instance while
its previous call was in flight: one round trip serves every request waiting at that moment. The GCRA arithmetic follows go-redis/redis_rate's
`allowN` script (itself after Brandur Leach's redis-cell write-up), extended to several limits
at once and to costs in tokens; time comes from Redis (`TIME`), so instances' clocks do not
matter. A settlement applies once, guarded by a per-request marker that its admission set
(deleting it is the idempotency check). SEED sets a budget window's
spend when it has none yet; PEEK reads budgets for the admin API.

Key layout (P = [redis] prefix): P..rate-key (GCRA TAT, ms), P..budget-key (hash: spent,
reserved; nano-USD), P..budget-key..":l" (zset of "trace|amount" by lease end, ms),
P..slot-key (zset of trace ids by lease end), P.."m:"..trace (settlement marker).
Nano-USD travel as integers; Lua compares them as doubles, exact below 2^53 (config caps a
budget at 9,000,000 USD).
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_PURGE = """
local function purge(hk, lk, now)
  local gone = redis.call('ZRANGEBYSCORE', lk, '-inf', now)
  if #gone > 0 then
    for _, m in ipairs(gone) do
      redis.call('HINCRBY', hk, 'reserved', '-' .. string.match(m, '|(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', lk, '-inf', now)
  end
end
"""

# One round trip for everything that queued meanwhile on an instance: first a batch of
# settlements, then a batch of admissions (each all or nothing, in arrival order).
# ARGV[1] = number of settlements, ARGV[2] = number of admissions; KEYS and ARGV then hold each
# settlement, then each admission, in the layouts below, read with running cursors k and a.
#
# Settlement. KEYS: marker, per budget: hash, leases; per token rate: its key; the slot (if
# any). ARGV: nb, nr, has_slot, trace, cost, per budget: amount, ttl_s; per token rate: ms per
# token, token delta.
# Admission. KEYS: rate keys, per budget: hash, leases; the slot (if any); the marker. ARGV:
# trace, lease_ms, nr, nb, has_slot, marker_ttl_ms, per rate: limit, period_ms, cost; per
# budget: limit, amount, ttl_s; then the slot's limit.
# Returns {number of released slots, their keys..., then per admission: refusal kind (0 none,
# 1 rate, 2 budget, 3 slot, 4 too large), index, retry_ms, per rate: remaining, reset_ms; per
# budget: spent, reserved}.
BATCH = _NOW + _PURGE + """
local k, a = 1, 3
local released = {}
for s = 1, tonumber(ARGV[1]) do
  local nb, nr, has_slot, trace, cost_s = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]),
                                           ARGV[a + 3], ARGV[a + 4]
  local cost = tonumber(cost_s)
  a = a + 5
  local first = redis.call('DEL', KEYS[k]) == 1
  k = k + 1
  for j = 1, nb do
    local hk, lk = KEYS[k], KEYS[k + 1]
    k = k + 2
    local amount, ttl = ARGV[a], tonumber(ARGV[a + 1])
    a = a + 2
    if first then
      if redis.call('ZREM', lk, trace .. '|' .. amount) == 1 then
        redis.call('HINCRBY', hk, 'reserved', '-' .. amount)
      end
      if cost > 0 then
        redis.call('HINCRBY', hk, 'spent', cost_s)
        if ttl > 0 then redis.call('EXPIRE', hk, ttl) end
      end
    end
  end
  for i = 1, nr do
    local rk = KEYS[k]
    k = k + 1
    local ei, delta = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    a = a + 2
    if first and delta ~= 0 then
      local tat = tonumber(redis.call('GET', rk)) or now
      if tat < now then tat = now end
      tat = tat + ei * delta
      if tat > now then
        redis.call('SET', rk, string.format('%.17g', tat), 'PX', math.ceil(tat - now))
      else
        redis.call('DEL', rk)
      end
    end
  end
  if has_slot == 1 then
    if first and redis.call('ZREM', KEYS[k], trace) == 1 then released[#released + 1] = KEYS[k] end
    k = k + 1
  end
end
local out = {#released}
for _, key in ipairs(released) do out[#out + 1] = key end
for n = 1, tonumber(ARGV[2]) do
  local trace, lease = ARGV[a], tonumber(ARGV[a + 1])
  local nr, nb, has_slot, marker_ttl = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]),
                                       tonumber(ARGV[a + 5])
  a = a + 6
  local kind, index, retry = 0, 0, 0
  local res = {}
  local rk0 = k
  local tats = {}
  for i = 1, nr do
    local limit, period, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local ei = period / limit
    local tat = tonumber(redis.call('GET', KEYS[k])) or now
    k = k + 1
    if tat < now then tat = now end
    local new_tat = tat + ei * cost
    local allow_at = new_tat - period
    if cost > limit then
      if kind == 0 then kind, index = 4, i - 1 end
      res[#res + 1] = math.max(0, math.floor((now - (tat - period)) / ei))
      res[#res + 1] = math.ceil(tat - now)
    elseif now < allow_at then
      local r = math.ceil(allow_at - now)
      if kind == 0 or (kind == 1 and r > retry) then kind, index, retry = 1, i - 1, r end
      res[#res + 1] = 0
      res[#res + 1] = math.ceil(tat - now)
    else
      res[#res + 1] = math.floor((now - allow_at) / ei)
      res[#res + 1] = math.ceil(new_tat - now)
    end
    tats[i] = new_tat
  end
  local holds = {}
  for j = 1, nb do
    local hk, lk = KEYS[k], KEYS[k + 1]
    k = k + 2
    local limit, amount, ttl = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    holds[j] = {hk, lk, amount, ttl, ARGV[a + 1]}
    a = a + 3
    purge(hk, lk, now)
    local v = redis.call('HMGET', hk, 'spent', 'reserved')
    local spent, reserved = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    res[#res + 1] = v[1] or '0'
    res[#res + 1] = v[2] or '0'
    if kind == 0 and spent + reserved + amount > limit then kind, index = 2, j - 1 end
  end
  local sk = nil
  if has_slot == 1 then
    sk = KEYS[k]
    k = k + 1
    local limit = tonumber(ARGV[a])
    a = a + 1
    if kind == 0 then
      redis.call('ZREMRANGEBYSCORE', sk, '-inf', now)
      if redis.call('ZCARD', sk) >= limit then kind = 3 end
    end
  end
  local mk = KEYS[k]
  k = k + 1
  if kind == 0 then
    for i = 1, nr do
      local ms = math.ceil(tats[i] - now)
      if ms > 0 then redis.call('SET', KEYS[rk0 + i - 1], string.format('%.17g', tats[i]), 'PX', ms) end
    end
    local until_ms = now + lease
    for j = 1, nb do
      local h = holds[j]
      if h[3] > 0 then
        redis.call('HINCRBY', h[1], 'reserved', h[5])
        redis.call('ZADD', h[2], until_ms, trace .. '|' .. h[5])
        redis.call('PEXPIRE', h[2], lease + 1000)
      end
      if h[4] > 0 then redis.call('EXPIRE', h[1], h[4]) end
    end
    if sk then
      redis.call('ZADD', sk, until_ms, trace)
      redis.call('PEXPIRE', sk, lease + 1000)
    end
    if marker_ttl > 0 then redis.call('SET', mk, '1', 'PX', marker_ttl) end
  end
  out[#out + 1] = kind
  out[#out + 1] = index
  out[#out + 1] = retry
  for _, x in ipairs(res) do out[#out + 1] = x end
end
return out
"""

# KEYS: budget hashes. ARGV: per budget: spent, ttl_s.
SEED = """
for i = 1, #KEYS do
  if redis.call('HSETNX', KEYS[i], 'spent', ARGV[2 * i - 1]) == 1 then
    local ttl = tonumber(ARGV[2 * i])
    if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
return #KEYS
"""

# KEYS: per budget: hash, leases. Returns spent, reserved per budget.
PEEK = _NOW + _PURGE + """
local out = {}
for i = 1, #KEYS, 2 do
  purge(KEYS[i], KEYS[i + 1], now)
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
end
return out
"""
