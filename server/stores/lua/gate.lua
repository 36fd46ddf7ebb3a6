-- The hot-path gate: one atomic round trip per authenticated request.
-- Checks the caller's credential state, then (only if it passes) counts the
-- call against a sliding-window rate limit. All keys share one hash tag (the
-- caller's identity), so the script runs on a Valkey Cluster too.
--
-- ARGV[1] mode: "user" | "key" | "anon"
-- ARGV[2] now (ms)
-- ARGV[3] window (ms)
-- ARGV[4..6] limits for the free, pro and enterprise tiers (0 = not limited)
-- user: KEYS[1] state hash, KEYS[2] token marker; ARGV[7] token iat (ms)
-- key:  KEYS[1] cache hash, KEYS[2] revoked marker, KEYS[3] touch marker;
--       ARGV[7] touch interval (ms)
-- anon: no credential keys; the free limit applies
-- The last two KEYS are the current and previous rate-limit windows.
--
-- Returns {status, detail, allowed, remaining, reset_ms}
--   status: ok | cold | inactive | stale | revoked | reused | miss
--   detail: user: tier; key: "user_id|key_id|tier|email|expires_ms|touch"

local mode = ARGV[1]
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local limits = {free = tonumber(ARGV[4]), pro = tonumber(ARGV[5]), enterprise = tonumber(ARGV[6])}
local tier = "free"
local detail = ""

if mode == "user" then
  local state = redis.call("HMGET", KEYS[1], "active", "valid_after", "tier")
  if not state[1] then
    return {"cold", "", 1, 0, 0}
  end
  if state[1] ~= "1" then
    return {"inactive", "", 1, 0, 0}
  end
  if tonumber(ARGV[7]) < tonumber(state[2]) then
    return {"stale", "", 1, 0, 0}
  end
  local marker = redis.call("GET", KEYS[2])
  if marker == "revoked" then
    return {"revoked", "", 1, 0, 0}
  end
  if marker and string.sub(marker, 1, 10) == "refreshed:" then
    if now > tonumber(string.sub(marker, 11)) then
      return {"reused", "", 1, 0, 0}
    end
  end
  tier = state[3] or "free"
  detail = tier
elseif mode == "key" then
  if redis.call("EXISTS", KEYS[2]) == 1 then
    return {"revoked", "", 1, 0, 0}
  end
  local cached = redis.call("HMGET", KEYS[1], "sha", "user_id", "key_id", "tier", "email", "expires_ms")
  if not cached[1] then
    return {"miss", "", 1, 0, 0}
  end
  local touch = "0"
  if redis.call("SET", KEYS[3], "1", "NX", "PX", tonumber(ARGV[7])) then
    touch = "1"
  end
  tier = cached[4]
  detail = table.concat({cached[1], cached[2], cached[3], cached[4], cached[5], cached[6], touch}, "|")
end

local limit = limits[tier] or limits.free
if not limit or limit <= 0 then
  return {"ok", detail, 1, 0, 0}
end

-- Sliding-window counter: the previous window's count weighted by how much
-- of it still overlaps the sliding window, plus the current window's count.
local current_key = KEYS[#KEYS - 1]
local previous_key = KEYS[#KEYS]
local window_start = now - (now % window)
local elapsed = now - window_start
local previous = tonumber(redis.call("GET", previous_key) or "0")
local current = tonumber(redis.call("GET", current_key) or "0")
local weighted = previous * (window - elapsed) / window + current
if weighted + 1 > limit then
  -- Time until one more call fits: first while the previous window's weight
  -- fades, else after the current window has become the previous one.
  local reset = nil
  if previous > 0 then
    local needed = (weighted + 1 - limit) * window / previous
    if needed <= window - elapsed then reset = needed end
  end
  if not reset then
    local fade = 0
    if current > 0 then fade = window * (1 - (limit - 1) / current) end
    if fade < 0 then fade = 0 end
    reset = window - elapsed + fade
  end
  return {"ok", detail, 0, 0, math.ceil(reset)}
end
current = redis.call("INCR", current_key)
if current == 1 then
  redis.call("PEXPIRE", current_key, window * 2)
end
local remaining = math.floor(limit - (previous * (window - elapsed) / window + current))
if remaining < 0 then remaining = 0 end
return {"ok", detail, 1, remaining, window - elapsed}
