-- Refresh with rotation (RFC 6749 section 6, RFC 9700 section 4.14.2): every answer carries
-- a new refresh token and retires the one sent, so the script keeps a queue: it starts with
-- the tokens in BENCH_REFRESH_FILE (one per line, at least one per connection) and each
-- successful answer puts its new refresh token back. Each token is sent exactly once.
-- BENCH_BASIC: base64 of "client_id:client_secret".
local queue, head, tail = {}, 1, 0
local basic = "Basic " .. os.getenv("BENCH_BASIC")
local headers = {
   ["Content-Type"] = "application/x-www-form-urlencoded",
   ["Authorization"] = basic,
}

function init(args)
   for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do
      if #line > 0 then
         tail = tail + 1
         queue[tail] = line
      end
   end
end

function request()
   local token = "empty-queue"
   if head <= tail then
      token = queue[head]
      queue[head] = nil
      head = head + 1
   end
   return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, hdrs, body)
   if status == 200 then
      local token = body:match('"refresh_token":"([^"]+)"')
      if token then
         tail = tail + 1
         queue[tail] = token
      end
   end
end
