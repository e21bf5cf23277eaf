/*-------------------------------------------------------------------------
 *
 * proxy.h
 *	  A loopback TCP proxy for the client tests: forwards bytes between
 *	  libledger and the server, and on command loses a reply.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_TEST_PROXY_H
#define LEDGER_TEST_PROXY_H

#include <stdbool.h>

typedef struct Proxy Proxy;

/* Listen on 127.0.0.1 (an ephemeral port) and forward to host:port. */
extern Proxy *proxy_start(const char *upstream_host, int upstream_port);
extern int	proxy_port(const Proxy *proxy);

/*
 * Arm the proxy: the nth time from now that the server sends the complete
 * reply to a command that ran (CommandComplete ... ReadyForQuery, sent after
 * the commit), close both sides instead of forwarding it.  Startup and
 * Parse replies do not count.  With refuse_after, every later connection is
 * accepted and closed at once until proxy_refuse(proxy, false).
 */
extern void proxy_cut_reply(Proxy *proxy, int nth, bool refuse_after);
#define proxy_cut_next_reply(proxy, refuse_after) proxy_cut_reply(proxy, 1, refuse_after)
extern void proxy_refuse(Proxy *proxy, bool refuse);
extern int	proxy_cuts(Proxy *proxy);	/* replies lost so far */
extern int	proxy_accepted(Proxy *proxy);	/* connections forwarded */
extern void proxy_stop(Proxy *proxy);

#endif
