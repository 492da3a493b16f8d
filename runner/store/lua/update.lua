-- update_run / end_run. KEYS: record, publish feed, notify feed; ARGV: events channel, event, feed score
-- ('' = not final), run id, the states it must be in ('' = any; JSON strings,
-- comma-separated), then field, value, ... (one call: a pipeline of three costs the client more)
if ARGV[5] ~= '' then
  local state = redis.call('HGET', KEYS[1], 'state')
  if not state or not string.find(ARGV[5], state, 1, true) then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -{KEEP} - 1)
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
