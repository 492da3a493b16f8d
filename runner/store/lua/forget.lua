-- forget. KEYS: index, publish feed; ARGV: created before, limit, key prefix, skip
local active = {['"{PENDING}"'] = 1, ['"{RECEIVED}"'] = 1, ['"{STARTED}"'] = 1,
                ['"{WAITING}"'] = 1}
local n = 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1],
                       'LIMIT', ARGV[4], ARGV[2])
for _, id in ipairs(ids) do
  local key = ARGV[3] .. '{RUN}' .. id
  local state = redis.call('HGET', key, 'state')
  if not (state and active[state]) and not redis.call('ZSCORE', KEYS[2], id) then
    local job = redis.call('HGET', key, 'job')
    local ok, result = pcall(cjson.decode, redis.call('HGET', key, 'result') or 'null')
    local targets = ok and type(result) == 'table' and result['targets']
    for _, t in pairs(type(targets) == 'table' and targets or {}) do
      local downloads = type(t) == 'table' and t['downloads']
      for _, d in ipairs(type(downloads) == 'table' and downloads or {}) do
        if type(d) == 'table' and type(d['sha256']) == 'string' then
          redis.call('DEL', ARGV[3] .. '{KV}download:' .. id .. ':' .. d['sha256'])
        end
      end
    end
    local live = ARGV[3] .. '{KV}{OUTPUT}' .. id  -- a live output a dead worker left
    local lok, index = pcall(cjson.decode, redis.call('GET', live) or 'null')
    local names = lok and type(index) == 'table' and index['targets']
    for _, t in ipairs(type(names) == 'table' and names or {}) do
      if type(t) == 'string' then redis.call('DEL', live .. ':' .. t) end
    end
    redis.call('DEL', key, ARGV[3] .. '{CANCEL}' .. id, ARGV[3] .. '{KV}{OUTBOX}' .. id,
               ARGV[3] .. '{KV}{OUTBOX}{LATE}' .. id, ARGV[3] .. '{KV}{LATE}' .. id, live)
    redis.call('ZREM', ARGV[3] .. '{NOTIFY}', id, '{LATE}' .. id)
    redis.call('ZREM', KEYS[1], id)
    local jok, name = pcall(cjson.decode, job or 'null')
    if jok and type(name) == 'string' then
      redis.call('ZREM', ARGV[3] .. '{RUNS}:' .. name, id)
    end
    n = n + 1
  end
end
return {n, #ids}
