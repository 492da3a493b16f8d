-- mark_received. KEYS: the records; ARGV: the events channel, then (when, run id as JSON)
-- per record
for i, key in ipairs(KEYS) do
  local state = redis.call('HGET', key, 'state')
  if state then
    redis.call('HSETNX', key, 'received', ARGV[2 * i])
    if state == '"{PENDING}"' then
      redis.call('HSET', key, 'state', '"{RECEIVED}"')
      redis.call('PUBLISH', ARGV[1],
                 '{"kind":"run","run_id":' .. ARGV[2 * i + 1] .. ',"state":"{RECEIVED}"}')
    end
  end
end
return 0
