-- Grant leases: KEYS are n rate-window hashes, then the budget counter if ARGV[3] is 1. Each rate
-- item (second, want, need, limit) gets min(want, room) units in its bucket for `second`, where the
-- room counts every bucket from second - 59 on, future ones included (leases fetched ahead), so no
-- 60-second span can go over the limit whichever second a grant is for; the budget item (want,
-- need, limit) likewise. All or nothing: a grant below its `need` refuses the whole call, unless
-- ARGV[4] is 1 (fetching ahead: grant what there is, down to nothing). Reply: {1, 0, 0, spent,
-- grant per rate item..., budget grant}, {0, item, retry_after, spent}, or {-1} to seed the budget.
local now = tonumber(ARGV[1]); local n = tonumber(ARGV[2]); local nb = tonumber(ARGV[3])
local soft = tonumber(ARGV[4]) == 1
local grants = {}
for i = 1, n do
  local a = 4 + 4 * (i - 1)
  local sec = tonumber(ARGV[a + 1]); local want = tonumber(ARGV[a + 2])
  local need = tonumber(ARGV[a + 3]); local limit = tonumber(ARGV[a + 4])
  local flat = redis.call('HGETALL', KEYS[i])
  local sum = 0; local oldest = sec; local stale = {}
  for j = 1, #flat, 2 do
    local b = tonumber(flat[j])
    if b < now - 62 then stale[#stale + 1] = flat[j]
    elseif b > sec - 60 then
      sum = sum + tonumber(flat[j + 1]); if b < oldest then oldest = b end
    end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[i], unpack(stale)) end
  local g = math.min(want, limit - sum)
  if g < need then
    if not soft then return {0, i, oldest + 60 - now, -1} end
    g = 0
  end
  grants[i] = math.max(g, 0)
end
local spent = -1; local gb = 0
if nb == 1 then
  local a = 4 + 4 * n
  local want = tonumber(ARGV[a + 1]); local need = tonumber(ARGV[a + 2]); local limit = tonumber(ARGV[a + 3])
  local v = redis.call('GET', KEYS[n + 1])
  if not v then return {-1, 0, 0, -1} end
  spent = tonumber(v)
  gb = math.min(want, limit - spent)
  if gb < need then
    if not soft then return {0, n + 1, 0, spent} end
    gb = 0
  end
  gb = math.max(gb, 0)
end
for i = 1, n do
  if grants[i] > 0 then redis.call('HINCRBY', KEYS[i], ARGV[4 + 4 * (i - 1) + 1], grants[i]) end
  redis.call('EXPIRE', KEYS[i], 130)
end
if gb > 0 then spent = redis.call('INCRBY', KEYS[n + 1], gb) end
local out = {1, 0, 0, spent}
for i = 1, n do out[#out + 1] = grants[i] end
out[#out + 1] = gb
return out
