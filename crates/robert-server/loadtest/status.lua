-- wrk script: POST /api/v6/status with pre-computed bodies (one per line of
-- BODIES, default bodies.txt), cycling through them. The bodies carry the
-- request time: run wrk within 60 s of `loadgen bodies`.
--   wrk -t2 -c64 -d30s --latency -s status.lua http://127.0.0.1:8086
local path = os.getenv("BODIES") or "bodies.txt"
local bodies = {}
for line in io.lines(path) do
  bodies[#bodies + 1] = line
end
local counter = 0
local thread_id = 0
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  counter = thread_id * 1000003
end

function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", "/api/v6/status", { ["Content-Type"] = "application/json" }, body)
end

local non200 = 0
function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end
