-- client_credentials that records every acknowledged token: each access token received in a
-- 200 answer is appended (and flushed) to BENCH_ACK_FILE before the next request on that
-- connection, so after the server is killed the file holds exactly what was acknowledged.
-- BENCH_BASIC: base64 of "client_id:client_secret".
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")

local acks = io.open(os.getenv("BENCH_ACK_FILE"), "a")

function response(status, headers, body)
   if status == 200 then
      local token = body:match('"access_token":"([^"]+)"')
      if token then
         acks:write(token, "\n")
         acks:flush()
      end
   end
end
