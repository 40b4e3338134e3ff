-- Hand back leased units no admission used: per key a field (a rate bucket; '' for a budget
-- counter) and an amount. What is gone (expired, or lost with Redis's data) is left alone, and
-- nothing goes below zero, so a late return can only leave a counter high, never low.
for i = 1, #KEYS do
  local f = ARGV[2 * i - 1]; local d = tonumber(ARGV[2 * i])
  if f == '' then
    if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('DECRBY', KEYS[i], d) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  elseif redis.call('HEXISTS', KEYS[i], f) == 1 and redis.call('HINCRBY', KEYS[i], f, -d) < 0 then
    redis.call('HSET', KEYS[i], f, 0)
  end
end
return 1
