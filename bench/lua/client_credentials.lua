-- client_credentials (RFC 6749 section 4.4) with HTTP Basic client authentication:
-- one static request, so wrk spends no Lua time per request.
-- BENCH_BASIC: base64 of "client_id:client_secret".
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
