rockspec_format = "3.0"
package = "hicache"
version = "scm-1"
source = {
  url = "git+https://github.com/hicache/hicache.git",
}
description = {
  summary = "Redis caching for Lua: a C core on hiredis with pooled connections",
  detailed = [[
hicache is a Redis client and cache for Lua 5.4 (and LuaJIT): a C module on
hiredis holds the hot path (connection pool, commands, replies), a thin Lua
layer validates options and makes it pleasant.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
  ZSTD = { header = "zstd.h", library = "zstd" },
  JANSSON = { header = "jansson.h", library = "jansson" },
  MSGPACK = { header = "msgpack.h", library = "msgpackc" },
  SODIUM = { header = "sodium.h", library = "sodium" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
build = {
  type = "builtin",
  modules = {
    ["hicache.core"] = {
      sources = {
        "src/base/hc_cmd.c",
        "src/core/hc_proto.c", "src/core/hc_xio.c", "src/core/hc_names.c", "src/core/hc_entry.c", "src/core/hc_scripts.c", "src/core/hc_codec.c", "src/core/hc_msgpack.c", "src/core/hc_json.c", "src/core/hc_stats.c", "src/core/hc_store.c", "src/core/hc_slot.c", "src/core/hc_seal.c",
        "src/transport/hc_sock.c", "src/transport/hc_tls.c", "src/transport/hc_conn.c", "src/transport/hc_mem.c", "src/transport/hc_mem_val.c", "src/transport/hc_mem_cmd.c", "src/transport/hc_mem_script.c",
        "src/router/hc_pool.c", "src/router/hc_l1.c", "src/router/hc_sentinel.c", "src/router/hc_node.c", "src/router/hc_cluster.c", "src/router/hc_smaster.c",
        "src/lua/hc_args.c", "src/lua/hc_reply.c", "src/lua/hc_cache.c", "src/lua/hc_read.c", "src/lua/hc_write.c", "src/lua/hc_lease.c", "src/lua/hc_keeper.c", "src/lua/hc_keys.c", "src/lua/hc_lproto.c", "src/lua/hc_client.c", "src/lua/hc_core.c", "src/lua/hc_lstore.c", "src/lua/hc_lsentinel.c", "src/lua/hc_lseal.c",
      },
      defines = { "_DEFAULT_SOURCE", "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src/base", "src/core", "src/transport", "src/router", "src/lua", "$(HIREDIS_INCDIR)", "$(ZSTD_INCDIR)", "$(JANSSON_INCDIR)", "$(MSGPACK_INCDIR)", "$(SODIUM_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(HIREDIS_LIBDIR)", "$(ZSTD_LIBDIR)", "$(JANSSON_LIBDIR)", "$(MSGPACK_LIBDIR)", "$(SODIUM_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      libraries = { "hiredis", "zstd", "jansson", "msgpackc", "sodium", "ssl", "crypto", "pthread", "m" },
    },
    ["hicache"] = "lua/hicache/init.lua",
    ["hicache.config"] = "lua/hicache/config.lua",
    ["hicache.lease"] = "lua/hicache/lease.lua",
    ["hicache.lock"] = "lua/hicache/lock.lua",
    ["hicache.keys"] = "lua/hicache/keys.lua",
    ["hicache.keyfile"] = "lua/hicache/keyfile.lua",
    ["hicache.publish"] = "lua/hicache/publish.lua",
    ["hicache.memoize"] = "lua/hicache/memoize.lua",
    ["hicache.invalidate"] = "lua/hicache/invalidate.lua",
    ["hicache.testing"] = "lua/hicache/testing.lua",
    ["hicache.argerror"] = "lua/hicache/argerror.lua",
    ["hicache.prometheus"] = "lua/hicache/prometheus.lua",
    ["hicache.transport"] = "lua/hicache/transport.lua",
    ["hicache.compat"] = "lua/hicache/compat.lua",
    ["hicache.cosocket"] = "lua/hicache/cosocket.lua",
    ["hicache.openresty"] = "lua/hicache/openresty.lua",
    ["hicache.memory"] = "lua/hicache/memory.lua",
    ["hicache.cli"] = "lua/hicache/cli.lua",
    ["hicache.cli.common"] = "lua/hicache/cli/common.lua",
    ["hicache.cli.layout"] = "lua/hicache/cli/layout.lua",
    ["hicache.cli.inspect"] = "lua/hicache/cli/inspect.lua",
    ["hicache.cli.get"] = "lua/hicache/cli/get.lua",
    ["hicache.cli.stats"] = "lua/hicache/cli/stats.lua",
    ["hicache.cli.locks"] = "lua/hicache/cli/locks.lua",
    ["hicache.cli.flush_namespace"] = "lua/hicache/cli/flush_namespace.lua",
  },
  install = {
    bin = { hicache = "bin/hicache" },
  },
}
