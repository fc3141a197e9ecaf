// SPDX-License-Identifier: MIT
/* libFuzzer target: a frame as libpcap hands it to the pcap frontend, into a packet with offload metadata. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../capture/cap.h"

/*
 * Input: link header length selector u8 (0: 14 Ethernet, 1: 16 Linux
 * cooked, 2: 20 cooked v2, else 0), MTU u16 (576 + value % 65000), a
 * byte saying how many bytes the wire had beyond the capture (0..255), then
 * the captured frame, exactly as long as the rest of the input.
 *
 * Besides memory safety: a taken packet lies in the slot, is a copy of the
 * frame after the link header (but for the checksum field of a GSO packet,
 * which may be made partial), and its offload fields stay inside it.
 */
enum { INPUT_HEADER_LEN = 4 };

static uint8_t slot[CAP_IP_MAX];

static void check_taken(const struct pkt *p, const uint8_t *ip, uint32_t len, unsigned mtu)
{
	if (p->data != slot || p->len != len || (len <= mtu && memcmp(p->data, ip, len) != 0))
		abort();
	if ((p->off.flags & PKT_F_NEEDS_CSUM) &&
	    (uint32_t)p->off.csum_start + p->off.csum_offset + 2 > len)
		abort();
	if (p->off.gso_type != PKT_GSO_NONE && (p->off.gso_size == 0 || p->off.hdr_len > len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned link_lens[] = { 14, 16, 20 };
	unsigned link_len, mtu;
	uint32_t caplen, wirelen, len;
	uint8_t *frame;
	struct pkt p;

	if (size < INPUT_HEADER_LEN || size - INPUT_HEADER_LEN > CAP_SNAPLEN)
		return 0;
	link_len = link_lens[data[0] < 3 ? data[0] : 0];
	mtu = 576u + (unsigned)((data[1] << 8 | data[2]) % 65000);
	caplen = (uint32_t)(size - INPUT_HEADER_LEN);
	wirelen = caplen + data[3];
	/* Exactly as large as captured: the sanitizer sees any read beyond. */
	frame = malloc(caplen ? caplen : 1);
	if (!frame)
		return 0;
	memcpy(frame, data + INPUT_HEADER_LEN, caplen);
	memset(&p, 0, sizeof(p));
	len = cap_take_packet(frame, caplen, wirelen, link_len, slot, mtu, &p);
	if (len)
		check_taken(&p, frame + link_len, len, mtu);
	free(frame);
	return 0;
}
