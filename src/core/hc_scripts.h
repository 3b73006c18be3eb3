/*
 * hc_scripts.h -- the Redis scripts hicache runs (by EVALSHA, loaded with
 * SCRIPT LOAD on first use and again after NOSCRIPT: SCRIPT FLUSH, a
 * restart, a failover). Their sources, with the layout of their KEYS and
 * ARGV, are in hc_scripts.c; docs/DESIGN.md explains the protocol.
 *
 * Every script takes its keys as independent items, each item's keys in
 * one Cluster slot (a value key and its companions, or one tag key), so a
 * router can split a call by slot without changing its meaning.
 */
#ifndef HC_SCRIPTS_H
#define HC_SCRIPTS_H

#include <hiredis/hiredis.h>

#include "hc_cmd.h"

enum {
    HC_SCRIPT_WRITE,   /* every write and invalidation of value keys and tags */
    HC_SCRIPT_LEASE,   /* get_or_set: hit, or take the lease, or its PTTL      */
    HC_SCRIPT_RELEASE, /* give a lease or a lock back, wake a waiter           */
    HC_SCRIPT_TAGS,    /* the tokens of tags, created when missing; TTLs       */
    HC_SCRIPT_ACQUIRE, /* lock: SET NX PX + a fence that never goes back       */
    HC_SCRIPT_EXTEND,  /* lock / lease: extend while the value is ours         */
    HC_SCRIPTS
};

/* The source of a script (for the keeper, which runs EVAL). */
const char *hc_script_source(int id);

/* The id of a script by name ("write", "lease", ...), or -1. */
int hc_script_id(const char *name);

/* Builds the EVALSHA command of script id into b (from its first
 * argument), given the SHA1 sha; the caller then adds numkeys, keys and
 * arguments and ends the command. */
void hc_script_begin(hc_cmdb *b, const char *sha);

#endif
