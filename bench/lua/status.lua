-- Counts every answer by status and by second, and prints one JSON line at the end
-- (read by bench/loadgen.py). The other scripts here load it first with dofile().
--
-- wrk runs one Lua state per thread (request/response) and one more for setup/done;
-- done() collects the threads' counters through thread:get().

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

statuses = {}   -- status code -> answers
per_second = {} -- os.time() second -> answers
sent = 0        -- requests built by request() (dynamic scripts only)
started = 0

function init(args)
  started = os.time()
  if init_script then
    init_script(args)
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local now = os.time()
  per_second[now] = (per_second[now] or 0) + 1
end

local function json_counts(counts)
  local parts = {}
  for key, value in pairs(counts) do
    table.insert(parts, string.format('"%s":%d', tostring(key), value))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all_statuses, all_seconds, all_sent, first = {}, {}, 0, nil
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      all_statuses[code] = (all_statuses[code] or 0) + n
    end
    for second, n in pairs(thread:get("per_second")) do
      all_seconds[second] = (all_seconds[second] or 0) + n
    end
    all_sent = all_sent + thread:get("sent")
    local thread_started = thread:get("started")
    if first == nil or thread_started < first then
      first = thread_started
    end
  end
  -- A stalled second: none answered, strictly inside the run (the first and last seconds
  -- are partial).
  local stalled, last, counts = 0, os.time(), {}
  for second = (first or last) + 1, last - 1 do
    table.insert(counts, all_seconds[second] or 0)
    if all_seconds[second] == nil then
      stalled = stalled + 1
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"sent":%d,"statuses":%s,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"stalled_seconds":%d,' ..
    '"per_second":[%s],' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.duration, summary.requests, all_sent, json_counts(all_statuses),
    errors.connect, errors.read, errors.write, errors.timeout, stalled, table.concat(counts, ","),
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
