-- POST /api/v1/payments, each with a fresh Idempotency-Key.
-- Arguments after "--": the population file written by bench/suite.py and a key prefix
-- unique to this wrk run. Each line of the file is either
--   payer <access token> <account id> <account id>
--   account <account id>
-- Payers take turns; a quarter of the payments move money between the payer's own two
-- accounts (in a random direction, so opposite transfers on one pair exercise the lock
-- ordering), the rest go from one of its accounts to any other account.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "status.lua")

local payers, accounts, prefix = {}, {}, ""

function init_script(args)
  for line in io.lines(args[1]) do
    local kind, a, b, c = line:match("^(%a+) (%S+) ?(%S*) ?(%S*)$")
    if kind == "payer" then
      table.insert(payers, { token = a, own = { b, c } })
    elseif kind == "account" then
      table.insert(accounts, a)
    end
  end
  prefix = args[2] .. "-" .. thread_number
  -- A seed per run and thread: the key prefix already differs, make the choices differ too.
  local seed = 0
  for i = 1, #prefix do
    seed = (seed * 31 + prefix:byte(i)) % 2147483647
  end
  math.randomseed(seed)
end

local verified = false

function request()
  -- wrk builds one request in the first thread to check it, and never sends it: not counted.
  if verified or thread_number ~= 1 then
    sent = sent + 1
  else
    verified = true
  end
  local payer = payers[(sent % #payers) + 1]
  local source, destination
  if math.random() < 0.25 then
    local first = math.random(2)
    source, destination = payer.own[first], payer.own[3 - first]
  else
    source = payer.own[math.random(2)]
    repeat
      destination = accounts[math.random(#accounts)]
    until destination ~= source
  end
  local body = string.format(
    '{"source_account_id":"%s","destination_account_id":"%s","amount":%d,' ..
    '"currency":"EUR","description":"bench"}',
    source, destination, math.random(500))
  return wrk.format("POST", "/api/v1/payments", {
    ["Authorization"] = "Bearer " .. payer.token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. sent,
  }, body)
end
