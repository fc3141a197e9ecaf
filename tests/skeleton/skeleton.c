// SPDX-License-Identifier: MIT
/*
 * The skeleton frontend's ops (see skeleton.h). Its "kernel" is a ring of
 * PKT_BATCH_MAX slots allocated at open: write_batch copies into it, an
 * eventfd counts what waits (a watcher on the daemon's loop, through
 * base/capwatch.h), read_batch hands the slots back. Nothing is
 * allocated per packet, like the real frontends' hot paths.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../base/capwatch.h"
#include "skeleton.h"

enum { SKF_SLOT_BYTES = 2048 };

struct skeleton {
	struct frontend fe; /* first, as base/frontend.h asks */
	int efd;
	struct capwatch watch;
	unsigned queued;
	unsigned ring; /* slots in use: --ring */
	uint32_t lens[PKT_BATCH_MAX];
	uint8_t slots[PKT_BATCH_MAX][SKF_SLOT_BYTES];
};

static struct skeleton *skf_of(struct frontend *fe)
{
	return (struct skeleton *)fe;
}

static int skf_open(struct frontend **out, const struct frontend_config *cfg, char *err, size_t err_len)
{
	const struct skeleton_flags *fl = cfg->flags;
	struct skeleton *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(err, err_len, "skeleton: out of memory");
		return -ENOMEM;
	}
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		int ret = -errno;

		snprintf(err, err_len, "skeleton: eventfd: %s", strerror(errno));
		free(s);
		return ret;
	}
	s->fe.ops = &skeleton_frontend;
	s->ring = fl && fl->ring ? fl->ring : PKT_BATCH_MAX;
	*out = &s->fe;
	return 0;
}

static int skf_start(struct frontend *fe, struct evloop *loop, const struct frontend_sink *sink)
{
	struct skeleton *s = skf_of(fe);

	return capwatch_start(&s->watch, loop, sink, &s->efd, 1);
}

static void skf_pause(struct frontend *fe, bool paused)
{
	capwatch_pause(&skf_of(fe)->watch, paused);
}

/* Hands back what write_batch queued; valid until the next call, as the contract says. */
static int skf_read_batch(struct frontend *fe, struct pkt_batch *batch)
{
	struct skeleton *s = skf_of(fe);
	uint64_t ready;

	if (read(s->efd, &ready, sizeof(ready)) < 0)
		return errno == EAGAIN ? 0 : -errno;
	batch->count = s->queued;
	for (unsigned i = 0; i < s->queued; i++) {
		batch->pkts[i] = (struct pkt){ .data = s->slots[i], .len = s->lens[i] };
		fe->stats.captured_packets++;
		fe->stats.captured_bytes += s->lens[i];
	}
	s->queued = 0;
	return (int)batch->count;
}

/* Too long, offload asked of a frontend without the cap, or a full ring: an inject error, counted. */
static int skf_write_batch(struct frontend *fe, const struct pkt_batch *batch)
{
	struct skeleton *s = skf_of(fe);
	unsigned before = s->queued;
	uint64_t one = 1;

	for (unsigned i = 0; i < batch->count; i++) {
		const struct pkt *p = &batch->pkts[i];

		if (p->len > SKF_SLOT_BYTES || !pkt_is_plain(p) || s->queued == s->ring) {
			fe->stats.inject_errors++;
			continue;
		}
		memcpy(s->slots[s->queued], p->data, p->len);
		s->lens[s->queued++] = p->len;
		fe->stats.injected_packets++;
		fe->stats.injected_bytes += p->len;
	}
	if (s->queued > before && write(s->efd, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

static void skf_close(struct frontend *fe)
{
	struct skeleton *s = skf_of(fe);

	capwatch_stop(&s->watch);
	close(s->efd);
	free(s);
}

/* It creates no kernel object that could outlive it. */
static int skf_cleanup(bool verbose, char *err, size_t err_len)
{
	(void)verbose;
	(void)err;
	(void)err_len;
	return 0;
}

static const struct frontend_flag skf_flags[] = {
	{ "--ring", FRONTEND_FLAG_UINT, offsetof(struct skeleton_flags, ring), FRONTEND_FLAG_BOTH, 1,
	  PKT_BATCH_MAX, "N", "slots of the loopback ring in use (default all)" },
	{ NULL },
};

static const struct frontend_packet_ops skf_packet_ops = {
	.read_batch = skf_read_batch,
	.write_batch = skf_write_batch,
	.pause = skf_pause,
};

const struct frontend_ops skeleton_frontend = {
	.name = "skeleton",
	.summary = "loop written packets back to the reader (tests only)",
	.policy_keys = 0,
	.policy_actions = POLICY_ACTION_BIT(POLICY_PROTECT),
	.policy_why = "it has no mechanism to select with",
	.open = skf_open,
	.start = skf_start,
	.packets = &skf_packet_ops,
	.close = skf_close,
	.cleanup = skf_cleanup,
	.flags = skf_flags,
	.flags_size = sizeof(struct skeleton_flags),
};
