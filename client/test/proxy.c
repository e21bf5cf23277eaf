/*-------------------------------------------------------------------------
 *
 * proxy.c
 *	  The lost-reply proxy of the client tests (see proxy.h).
 *
 * One thread polls the listening socket and every open client/server pair.
 * Armed, it inspects what the server sends: a chunk that carries a
 * CommandComplete and ends with ReadyForQuery is the proof that the server
 * finished and committed the command, and it is exactly that chunk the
 * client never gets.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

#define MAX_PAIRS 32

typedef struct Pair
{
	int			client;
	int			server;
} Pair;

struct Proxy
{
	pthread_t	thread;
	pthread_mutex_t lock;
	int			listen_fd;
	int			stop_pipe[2];
	struct sockaddr_in upstream;
	int			port;
	Pair		pairs[MAX_PAIRS];
	int			n_pairs;
	/* under lock */
	int			cut_countdown;	/* cut at the end of this many replies; 0: off */
	bool		refuse_after;
	bool		refuse;
	int			cuts;
	int			accepted;
};

static bool
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		w = send(fd, buf, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		buf += w;
		len -= (size_t) w;
	}
	return true;
}

static void
close_pair(Proxy *p, int i)
{
	close(p->pairs[i].client);
	close(p->pairs[i].server);
	p->pairs[i] = p->pairs[--p->n_pairs];
}

/*
 * True when buf holds whole protocol messages, the last a ReadyForQuery,
 * and one of them a CommandComplete: the complete reply to a command that
 * ran (and, outside a transaction block, committed).  The startup reply and
 * the reply to a Parse have no CommandComplete, so they are never cut.
 */
static bool
completes_a_command(const unsigned char *buf, size_t len)
{
	size_t		pos = 0;
	bool		complete = false;
	unsigned char last = 0;

	while (pos + 5 <= len)
	{
		uint32_t	msglen = ((uint32_t) buf[pos + 1] << 24) | ((uint32_t) buf[pos + 2] << 16) |
			((uint32_t) buf[pos + 3] << 8) | (uint32_t) buf[pos + 4];

		if (msglen < 4)
			return false;
		last = buf[pos];
		if (last == 'C')
			complete = true;
		pos += 1 + (size_t) msglen;
	}
	return pos == len && last == 'Z' && complete;
}

static void
accept_one(Proxy *p)
{
	int			client = accept(p->listen_fd, NULL, NULL);
	int			server;
	int			one = 1;
	bool		refuse;

	if (client < 0)
		return;
	pthread_mutex_lock(&p->lock);
	refuse = p->refuse;
	pthread_mutex_unlock(&p->lock);
	if (refuse || p->n_pairs == MAX_PAIRS)
	{
		close(client);
		return;
	}
	server = socket(AF_INET, SOCK_STREAM, 0);
	if (server < 0 ||
		connect(server, (struct sockaddr *) &p->upstream, sizeof(p->upstream)) != 0)
	{
		if (server >= 0)
			close(server);
		close(client);
		return;
	}
	setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->pairs[p->n_pairs].client = client;
	p->pairs[p->n_pairs].server = server;
	p->n_pairs++;
	pthread_mutex_lock(&p->lock);
	p->accepted++;
	pthread_mutex_unlock(&p->lock);
}

/* Move one chunk for pair i; false when the pair must be closed. */
static bool
forward(Proxy *p, int i, bool from_server)
{
	char		buf[65536];
	int			from = from_server ? p->pairs[i].server : p->pairs[i].client;
	int			to = from_server ? p->pairs[i].client : p->pairs[i].server;
	ssize_t		n = recv(from, buf, sizeof(buf), 0);

	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	if (from_server)
	{
		bool		cut = false;

		pthread_mutex_lock(&p->lock);
		if (p->cut_countdown > 0 &&
			completes_a_command((const unsigned char *) buf, (size_t) n) &&
			--p->cut_countdown == 0)
		{
			cut = true;
			p->cuts++;
			if (p->refuse_after)
				p->refuse = true;
		}
		pthread_mutex_unlock(&p->lock);
		if (cut)
			return false;
	}
	return write_all(to, buf, (size_t) n);
}

static void *
proxy_main(void *arg)
{
	Proxy	   *p = arg;

	for (;;)
	{
		struct pollfd fds[2 + 2 * MAX_PAIRS];
		int			n_pairs = p->n_pairs;
		int			i;

		fds[0].fd = p->stop_pipe[0];
		fds[0].events = POLLIN;
		fds[1].fd = p->listen_fd;
		fds[1].events = POLLIN;
		for (i = 0; i < n_pairs; i++)
		{
			fds[2 + 2 * i].fd = p->pairs[i].client;
			fds[2 + 2 * i].events = POLLIN;
			fds[3 + 2 * i].fd = p->pairs[i].server;
			fds[3 + 2 * i].events = POLLIN;
		}
		if (poll(fds, (nfds_t) (2 + 2 * n_pairs), -1) < 0)
		{
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents)
			break;
		/* backwards, so that close_pair's swap-with-last is safe */
		for (i = n_pairs - 1; i >= 0; i--)
		{
			bool		alive = true;

			if (fds[3 + 2 * i].revents)
				alive = forward(p, i, true);
			if (alive && fds[2 + 2 * i].revents)
				alive = forward(p, i, false);
			if (!alive)
				close_pair(p, i);
		}
		if (fds[1].revents & POLLIN)
			accept_one(p);
	}
	while (p->n_pairs > 0)
		close_pair(p, p->n_pairs - 1);
	return NULL;
}

Proxy *
proxy_start(const char *upstream_host, int upstream_port)
{
	Proxy	   *p = calloc(1, sizeof(Proxy));
	struct sockaddr_in addr;
	socklen_t	len = sizeof(addr);
	int			one = 1;

	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	p->upstream.sin_family = AF_INET;
	p->upstream.sin_port = htons((uint16_t) upstream_port);
	if (inet_pton(AF_INET, upstream_host, &p->upstream.sin_addr) != 1)
		goto fail;
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (p->listen_fd < 0)
		goto fail;
	setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	if (bind(p->listen_fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
		listen(p->listen_fd, 16) != 0 ||
		getsockname(p->listen_fd, (struct sockaddr *) &addr, &len) != 0)
		goto fail;
	p->port = ntohs(addr.sin_port);
	if (pipe(p->stop_pipe) != 0)
		goto fail;
	if (pthread_create(&p->thread, NULL, proxy_main, p) != 0)
		goto fail;
	return p;

fail:
	fprintf(stderr, "proxy: %s\n", strerror(errno));
	free(p);
	return NULL;
}

int
proxy_port(const Proxy *p)
{
	return p->port;
}

void
proxy_cut_reply(Proxy *p, int nth, bool refuse_after)
{
	pthread_mutex_lock(&p->lock);
	p->cut_countdown = nth;
	p->refuse_after = refuse_after;
	pthread_mutex_unlock(&p->lock);
}

void
proxy_refuse(Proxy *p, bool refuse)
{
	pthread_mutex_lock(&p->lock);
	p->refuse = refuse;
	pthread_mutex_unlock(&p->lock);
}

int
proxy_cuts(Proxy *p)
{
	int			n;

	pthread_mutex_lock(&p->lock);
	n = p->cuts;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int
proxy_accepted(Proxy *p)
{
	int			n;

	pthread_mutex_lock(&p->lock);
	n = p->accepted;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void
proxy_stop(Proxy *p)
{
	char		c = 0;

	if (p == NULL)
		return;
	if (write(p->stop_pipe[1], &c, 1) != 1)
		perror("proxy_stop");
	pthread_join(p->thread, NULL);
	close(p->stop_pipe[0]);
	close(p->stop_pipe[1]);
	close(p->listen_fd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
