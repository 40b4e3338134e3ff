-- Exact admission (leasing off or limits too small to lease): check every rate window of every
-- scope and the budget, then count. KEYS: per scope its requests and tokens hashes, then the budget
-- counter. ARGV: now, n scopes, tokens, budget limit (-1: none), estimated cost, then rpm and tpm per
-- scope (-1: none). Reply: {1, 'ok', 0, 0, spent}, {0, limit, scope index, retry_after, spent}, or
-- {-1, 'seed', ...} when the budget counter must be seeded first.
local now = tonumber(ARGV[1]); local n = tonumber(ARGV[2]); local tokens = tonumber(ARGV[3])
local blimit = tonumber(ARGV[4]); local est = tonumber(ARGV[5])
local lo = now - 59
local function window(key)
  local flat = redis.call('HGETALL', key)
  local sum = 0; local oldest = now; local stale = {}
  for i = 1, #flat, 2 do
    local sec = tonumber(flat[i])
    if sec < lo then stale[#stale + 1] = flat[i]
    else sum = sum + tonumber(flat[i + 1]); if sec < oldest then oldest = sec end end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return sum, oldest
end
for i = 1, n do
  local rpm = tonumber(ARGV[5 + 2 * i - 1]); local tpm = tonumber(ARGV[5 + 2 * i])
  if rpm >= 0 then
    local s, o = window(KEYS[2 * i - 1])
    if s + 1 > rpm then return {0, 'rpm', i, o + 60 - now, -1} end
  end
  if tpm >= 0 then
    local s, o = window(KEYS[2 * i])
    if s + tokens > tpm then return {0, 'tpm', i, o + 60 - now, -1} end
  end
end
local spent = -1
if blimit >= 0 then
  local v = redis.call('GET', KEYS[2 * n + 1])
  if not v then return {-1, 'seed', 0, 0, -1} end
  spent = tonumber(v)
  if spent >= blimit or spent + est > blimit then return {0, 'budget', 0, 0, spent} end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[2 * i - 1], now, 1); redis.call('EXPIRE', KEYS[2 * i - 1], 130)
  redis.call('HINCRBY', KEYS[2 * i], now, tokens); redis.call('EXPIRE', KEYS[2 * i], 130)
end
if blimit >= 0 and est > 0 then spent = redis.call('INCRBY', KEYS[2 * n + 1], est) end
return {1, 'ok', 0, 0, spent}
