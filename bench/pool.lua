-- wrk script: replay a file of pre-signed requests ("<jwt>\t<body>" per line), starting at an offset,
-- and count responses per status. Used with one wrk thread (-t1).
local reqs = {}
local n = 0
local i = 0
wrapped = 0
statuses = {}

function init(args)
  local path = args[1]
  i = tonumber(args[2] or "0")
  for line in io.lines(path) do
    local tab = line:find("\t", 1, true)
    n = n + 1
    reqs[n] = wrk.format("POST", "/webhooks/gong",
      { ["Authorization"] = line:sub(1, tab - 1), ["Content-Type"] = "application/json" },
      line:sub(tab + 1))
  end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local parts = {}
  local wraps = 0
  local last = 0
  for _, t in ipairs(threads) do
    wraps = wraps + t:get("wrapped")
    for code, count in pairs(t:get("statuses")) do
      table.insert(parts, string.format('"%d": %d', code, count))
    end
  end
  io.write(string.format(
    'BENCH_JSON {"duration_us": %d, "requests": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_timeout": %d, "wrapped": %d, "p50_us": %d, "p99_us": %d, "statuses": {%s}}\n',
    summary.duration, summary.requests, summary.errors.connect, summary.errors.read, summary.errors.timeout,
    wraps, latency:percentile(50), latency:percentile(99), table.concat(parts, ", ")))
end
