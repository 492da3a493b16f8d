-- begin_run. KEYS: record, cancel flag, index, job index;
-- ARGV: worker, now, job, run id (JSON), run id, events channel
local previous = redis.call('HGET', KEYS[1], 'state')
if previous == '"{SUCCESS}"' or previous == '"{FAILURE}"' or previous == '"{REVOKED}"'
    or previous == '"{STARTED}"' or previous == '"{WAITING}"' then
  return {previous, 0, 0}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {previous, 1, 0} end
if previous == false then
  redis.call('HSET', KEYS[1], 'run_id', ARGV[4], 'job', ARGV[3], 'created', ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[5])
end
local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
redis.call('HSET', KEYS[1], 'state', '"{STARTED}"', 'started', ARGV[2], 'worker', ARGV[1])
redis.call('PUBLISH', ARGV[6], '{"kind":"run","run_id":' .. ARGV[4] .. ',"state":"{STARTED}"}')
return {previous, 0, n}
