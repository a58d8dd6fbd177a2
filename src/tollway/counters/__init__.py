"""The counter store behind rate limits, budgets and concurrency: in this process or in Redis.

`base` has the request and answer types, `memory` the in-process store (the default), `redis`
the shared one (`[redis] url`), whose Lua scripts (`scripts`) do every check and charge of a
request in one atomic round trip. Both implement the same rules, listed in `base`.
"""
