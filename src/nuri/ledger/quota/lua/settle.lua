-- Correct an admission to what the request really used. KEYS: the tokens hash of each scope, then
-- the budget counter. ARGV: n scopes, the admission's second, token delta, cost delta (nanos).
-- Buckets and counters that are gone (expired, or lost with Redis's data) are left alone.
local n = tonumber(ARGV[1]); local sec = ARGV[2]; local dt = tonumber(ARGV[3]); local dc = tonumber(ARGV[4])
if dt ~= 0 then
  for i = 1, n do
    if redis.call('HEXISTS', KEYS[i], sec) == 1 then redis.call('HINCRBY', KEYS[i], sec, dt) end
  end
end
if dc ~= 0 and redis.call('EXISTS', KEYS[n + 1]) == 1 then redis.call('INCRBY', KEYS[n + 1], dc) end
return 1
