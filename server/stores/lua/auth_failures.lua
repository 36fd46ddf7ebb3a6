-- graphgate brute-force counters (CONTROLS.md C6), one atomic step per call.
--
-- Called by graphgate.server.stores.auth_failures, never by hand. Every key
-- carries one identity's hash tag ({i.<hmac>} for a client IP, {a.<hmac>} for
-- a target account), so each call touches exactly one cluster slot. Time comes
-- from the caller (ARGV[2], integer milliseconds) instead of TIME so that the
-- service's clock is the only clock and tests can move it.
--
-- Replies are arrays of integers (Lua numbers become integer replies).
--
-- ip_check    KEYS window, state, block   ARGV op, now, window_ms
-- ip_fail     KEYS window, state, block   ARGV op, now, window_ms, max_tracked,
--                                              n, (threshold, duration_ms, level) * n
-- ip_success  KEYS window, state, block   ARGV op, now
--    -> {failures_in_window, streak, last_failure_ms, blocked_until_ms, block_level}
--
-- acct_check    KEYS state, known   ARGV op, now, ip_digest, known_ttl_ms, window_ms
-- acct_fail     KEYS state, known   ARGV op, now, ip_digest, known_ttl_ms, window_ms
-- acct_success  KEYS state, known   ARGV op, now, ip_digest, known_ttl_ms, max_known
--    -> {streak, last_failure_ms, ip_is_known}

local op = ARGV[1]
local now = tonumber(ARGV[2])

-- The block value is "<until_ms>:<level>"; an expired one counts as none even
-- before its TTL removes it (the caller's clock may run ahead of Valkey's).
local function read_block(key)
  local value = redis.call('GET', key)
  if not value then
    return 0, 0
  end
  local until_ms, level = string.match(value, '^(%d+):(%d+)$')
  until_ms = tonumber(until_ms) or 0
  if until_ms <= now then
    return 0, 0
  end
  return until_ms, tonumber(level) or 0
end

-- A streak ends a window after its last failure. The key's TTL does that in
-- real time; this does it in the caller's time, which is the one that counts.
local function read_streak(state_key, window_ms)
  local state = redis.call('HMGET', state_key, 'streak', 'last')
  local streak, last = tonumber(state[1]) or 0, tonumber(state[2]) or 0
  if last <= now - window_ms then
    return 0, 0
  end
  return streak, last
end

local function ip_reply(window_key, state_key, block_key, window_ms)
  -- Exclusive lower bound: a failure exactly window_ms old is forgotten.
  local failures = redis.call('ZCOUNT', window_key, '(' .. (now - window_ms), '+inf')
  local streak, last = read_streak(state_key, window_ms)
  local until_ms, level = read_block(block_key)
  return {failures, streak, last, until_ms, level}
end

local function known_ip(known_key, ip_digest, known_ttl_ms)
  local seen = tonumber(redis.call('ZSCORE', known_key, ip_digest))
  if seen and seen > now - known_ttl_ms then
    return 1
  end
  return 0
end

local function account_reply(state_key, known_key, ip_digest, known_ttl_ms, window_ms)
  local streak, last = read_streak(state_key, window_ms)
  return {streak, last, known_ip(known_key, ip_digest, known_ttl_ms)}
end

if op == 'ip_check' then
  return ip_reply(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[3]))

elseif op == 'ip_fail' then
  local window_ms = tonumber(ARGV[3])
  local max_tracked = tonumber(ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_ms)
  -- A per-identity sequence keeps members unique when two failures share a
  -- millisecond (a set would silently merge them).
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('ZADD', KEYS[1], now, seq)
  -- Past the highest threshold more entries change nothing; the cap bounds
  -- memory per identity whatever an attacker sends.
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(max_tracked + 1))
  local failures = redis.call('ZCARD', KEYS[1])
  local streak = read_streak(KEYS[2], window_ms)
  redis.call('HSET', KEYS[2], 'streak', streak + 1, 'last', now)
  redis.call('PEXPIRE', KEYS[1], window_ms)
  redis.call('PEXPIRE', KEYS[2], window_ms)
  -- The highest threshold reached decides the block; each failure at or
  -- above a threshold (re)starts that level's block from now.
  local duration, level = 0, 0
  local n = tonumber(ARGV[5])
  for i = 0, n - 1 do
    local threshold = tonumber(ARGV[6 + 3 * i])
    if failures >= threshold then
      duration = tonumber(ARGV[7 + 3 * i])
      level = tonumber(ARGV[8 + 3 * i])
    end
  end
  if duration > 0 then
    local until_ms = now + duration
    local current_until, current_level = read_block(KEYS[3])
    -- Never shorten or downgrade a block that is already running.
    if current_until > until_ms then
      until_ms = current_until
    end
    if current_level > level then
      level = current_level
    end
    -- The TTL lets Valkey drop the block by itself when it ends.
    redis.call('SET', KEYS[3], until_ms .. ':' .. level, 'PX', until_ms - now)
  end
  return ip_reply(KEYS[1], KEYS[2], KEYS[3], window_ms)

elseif op == 'ip_success' then
  -- Ends the delay streak only; the window and any block stay (see the
  -- service's docstring). HSET on a missing key would create one without a TTL.
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[2], 'streak', 0)
  end
  return {0, 0, 0, 0, 0}

elseif op == 'acct_check' then
  return account_reply(KEYS[1], KEYS[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))

elseif op == 'acct_fail' then
  local window_ms = tonumber(ARGV[5])
  local streak = read_streak(KEYS[1], window_ms)
  redis.call('HSET', KEYS[1], 'streak', streak + 1, 'last', now)
  redis.call('PEXPIRE', KEYS[1], window_ms)
  return account_reply(KEYS[1], KEYS[2], ARGV[3], tonumber(ARGV[4]), window_ms)

elseif op == 'acct_success' then
  local known_ttl_ms = tonumber(ARGV[4])
  local max_known = tonumber(ARGV[5])
  redis.call('DEL', KEYS[1])
  redis.call('ZADD', KEYS[2], now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - known_ttl_ms)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(max_known + 1))
  redis.call('PEXPIRE', KEYS[2], known_ttl_ms)
  return {0, 0, 1}
end

return redis.error_reply('auth_failures.lua: unknown op')
