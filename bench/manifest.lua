-- wrk script: method and headers from the environment, JSON summary on stdout.
-- WRK_METHOD (GET|HEAD|PUT), WRK_ACCEPT, WRK_AUTH ("Bearer …" or empty).
-- PUT: WRK_BODY_FILE (the body), WRK_CONTENT_TYPE; every request goes to the URL's path plus
-- "<thread>-<counter>" (a new tag per request, so each PUT really records something).
wrk.method = os.getenv("WRK_METHOD") or "GET"
local accept = os.getenv("WRK_ACCEPT")
if accept and accept ~= "" then wrk.headers["Accept"] = accept end
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

local body_file = os.getenv("WRK_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
  local threads = 0
  setup = function(thread)
    threads = threads + 1
    thread:set("tid", threads)
  end
  local counter = 0
  request = function()
    counter = counter + 1
    return wrk.format(nil, wrk.path .. tid .. "-" .. counter)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
