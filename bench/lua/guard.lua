-- A protected route behind the bearer guard (RFC 6750): GET with one live access token.
-- BENCH_TOKEN: the token.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
