-- Token introspection (RFC 7662) of one live access token by a confidential client.
-- BENCH_BASIC: base64 of "client_id:client_secret"; BENCH_TOKEN: the token to introspect.
wrk.method = "POST"
wrk.body = "token=" .. os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
