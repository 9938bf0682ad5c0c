-- client_credentials (RFC 6749 section 4.4) with a DPoP proof (RFC 9449) per request. Each
-- proof's jti is accepted once, so the proofs are made before the run (bench-dpop-proofs) and
-- read from BENCH_PROOF_FILE, one per line; each is sent exactly once, and wrk spends no time
-- signing. BENCH_BASIC: base64 of "client_id:client_secret".
local proofs, next_proof = {}, 1
local headers = {
   ["Content-Type"] = "application/x-www-form-urlencoded",
   ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
}

function init(args)
   for line in io.lines(os.getenv("BENCH_PROOF_FILE")) do
      if #line > 0 then
         proofs[#proofs + 1] = line
      end
   end
end

function request()
   headers["DPoP"] = proofs[next_proof] or "out-of-proofs"
   next_proof = next_proof + 1
   return wrk.format("POST", nil, headers, "grant_type=client_credentials")
end
