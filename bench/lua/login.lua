-- POST /api/v1/auth/login with one user's form, over and over (the login flood).
-- Arguments after "--": the email and the password.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "status.lua")

local function form_escape(value)
  return (value:gsub("[^%w%-%._~]", function(char)
    return string.format("%%%02X", string.byte(char))
  end))
end

function init_script(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = "username=" .. form_escape(args[1]) .. "&password=" .. form_escape(args[2])
end
