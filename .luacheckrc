-- luacheck configuration: `make lint` (run by `make test`, hence in CI)
std = "lua54"
max_line_length = 120
files["spec"] = { std = "+busted", globals = { "finally" } }
