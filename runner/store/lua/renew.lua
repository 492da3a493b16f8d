-- lock: take or renew KEYS[1] for owner ARGV[1] for ARGV[2] ms unless another owner holds it
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1
end
return 0
