// SPDX-License-Identifier: MIT
/* Frame encoding and the one parser every byte from the wire goes through. */

/*
 * Wire layout (proto.h): type u8, payload length u24 big endian, payload.
 * FRAME_PACKET_OFF prefixes the IP packet with 12 bytes of offload
 * metadata, big endian:
 *
 *   flags u8, gso_type u8, hdr_len u16, gso_size u16,
 *   csum_start u16, csum_offset u16, reserved u16 (0)
 *
 * frame_parse() rejects a frame as soon as its header alone proves it
 * malformed, before waiting for its payload: a hostile peer cannot make a
 * receiver buffer bytes it will refuse anyway. Everything is checked
 * against the constants of proto.h before a length is used.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "../base/offload.h"
#include "frame.h"

/* Flag bits we understand; others (virtio's DATA_VALID...) mean nothing here. */
#define FRAME_OFF_KNOWN_FLAGS PKT_F_NEEDS_CSUM

enum { IP_HEADER_MIN = 20, IPV6_HEADER_LEN = 40 };

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put_header(uint8_t *buf, uint8_t type, uint32_t len)
{
	buf[0] = type;
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
}

/* Can a frame of this type carry a payload of plen bytes at all? */
static bool header_valid(uint8_t type, uint32_t plen)
{
	switch (type) {
	case FRAME_HELLO:
		return plen == FRAME_HELLO_LEN;
	case FRAME_PACKET:
		return plen >= IP_HEADER_MIN && plen <= FRAME_IP_MAX;
	case FRAME_PACKET_OFF:
		return plen >= FRAME_OFFLOAD_LEN + IP_HEADER_MIN && plen <= FRAME_PAYLOAD_MAX;
	case FRAME_KEEPALIVE:
		return plen == 0;
	case FRAME_CLOSE:
		return plen <= FRAME_CLOSE_REASON_MAX;
	case FRAME_STREAM_OPEN:
		return plen == FRAME_STREAM_OPEN_V4_LEN || plen == FRAME_STREAM_OPEN_V6_LEN;
	case FRAME_STREAM_DATA:
		return plen > FRAME_STREAM_ID_LEN && plen <= FRAME_STREAM_ID_LEN + FRAME_STREAM_DATA_MAX;
	case FRAME_STREAM_FIN:
	case FRAME_STREAM_CONNECTED:
		return plen == FRAME_STREAM_ID_LEN;
	case FRAME_STREAM_RESET:
		return plen == FRAME_STREAM_RESET_LEN;
	case FRAME_STREAM_CREDIT:
		return plen == FRAME_STREAM_CREDIT_LEN;
	case FRAME_DGRAM:
		return plen >= FRAME_DGRAM_V4_HEADER && plen <= FRAME_DGRAM_V6_HEADER + FRAME_DGRAM_MAX;
	case FRAME_UDP_SETUP:
		return plen == FRAME_UDP_SETUP_LEN;
	case FRAME_UDP_PATH:
		return plen == FRAME_UDP_PATH_LEN;
	case FRAME_MOVE:
		return plen == FRAME_MOVE_V4_LEN || plen == FRAME_MOVE_V6_LEN;
	case FRAME_MOVED:
		return plen == 0;
	default:
		return false;
	}
}

/* Raw, unknown flag bits included: offload_check refuses them. Returns the reserved field. */
static uint16_t offload_decode(const uint8_t *p, struct pkt_offload *off)
{
	off->flags = p[0];
	off->gso_type = p[1];
	off->hdr_len = get16(p + 2);
	off->gso_size = get16(p + 4);
	off->csum_start = get16(p + 6);
	off->csum_offset = get16(p + 8);
	return get16(p + 10);
}

static void offload_encode(uint8_t *p, const struct pkt_offload *off)
{
	p[0] = off->flags & FRAME_OFF_KNOWN_FLAGS;
	p[1] = off->gso_type;
	put16(p + 2, off->hdr_len);
	put16(p + 4, off->gso_size);
	put16(p + 6, off->csum_start);
	put16(p + 8, off->csum_offset);
	put16(p + 10, 0);
}

static int parse_packet(struct frame *out, const uint8_t *ip, uint32_t len)
{
	unsigned version = ip[0] >> 4;

	if (version != 4 && version != 6)
		return -EPROTO;
	if (version == 6 && len < IPV6_HEADER_LEN)
		return -EPROTO;
	/* The frame borrows the caller's buffer; receivers own it mutable. */
	out->pkt.data = (uint8_t *)ip;
	out->pkt.len = len;
	return 0;
}

/*
 * A block that does not describe its packet is the packet's fault, not
 * the stream's: the frame is whole, so the session goes on and the
 * receiver drops the packet (offload_bad). It never reaches a vnet header.
 */
static int parse_packet_off(struct frame *out, const uint8_t *p)
{
	uint16_t reserved = offload_decode(p, &out->pkt.off);
	int ret = parse_packet(out, p + FRAME_OFFLOAD_LEN, out->len - FRAME_OFFLOAD_LEN);

	if (ret < 0)
		return ret;
	out->offload_bad = reserved != 0 || offload_check(&out->pkt, NULL) < 0;
	return 0;
}

/*
 * OPEN and DGRAM share a layout after the id: a byte of their own (proto,
 * reserved), family u8 (4 or 6) at offset 5, port u16 at 6, the address
 * at 8. Returns the address length, or -EPROTO.
 */
static int parse_endpoint(struct frame *out, const uint8_t *p)
{
	unsigned alen = p[5] == 4 ? 4 : p[5] == 6 ? 16 : 0;

	if (!alen || out->len < 8 + alen)
		return -EPROTO;
	out->stream_addr.family = alen == 4 ? AF_INET : AF_INET6;
	memcpy(out->stream_addr.bytes, p + 8, alen);
	out->stream_port = get16(p + 6);
	return out->stream_port ? (int)alen : -EPROTO;
}

/* OPEN: id, proto, family, port, address; the length must be the family's. */
static int parse_stream_open(struct frame *out, const uint8_t *p)
{
	int alen = parse_endpoint(out, p);

	out->stream_proto = p[4];
	if (alen < 0 || out->len != 8u + (unsigned)alen)
		return -EPROTO;
	return out->stream_proto == IPPROTO_TCP || out->stream_proto == IPPROTO_UDP ? 0 : -EPROTO;
}

/* DGRAM: flow, reserved (0), family, port, address, payload. */
static int parse_dgram(struct frame *out, const uint8_t *p)
{
	int alen = parse_endpoint(out, p);

	if (alen < 0 || p[4] != 0)
		return -EPROTO;
	out->stream_data = p + 8 + alen;
	out->stream_len = out->len - 8 - (uint32_t)alen;
	return out->stream_len <= FRAME_DGRAM_MAX ? 0 : -EPROTO;
}

static int parse_stream(struct frame *out)
{
	const uint8_t *p = out->payload;

	out->stream_id = get32(p);
	if (out->stream_id == 0)
		return -EPROTO;
	switch (out->type) {
	case FRAME_STREAM_OPEN:
		return parse_stream_open(out, p);
	case FRAME_STREAM_DATA:
		out->stream_data = p + FRAME_STREAM_ID_LEN;
		out->stream_len = out->len - FRAME_STREAM_ID_LEN;
		return 0;
	case FRAME_STREAM_RESET:
		out->stream_reason = p[4];
		return p[4] >= 1 && p[4] <= STREAM_RESET_REASON_MAX ? 0 : -EPROTO;
	case FRAME_STREAM_CREDIT:
		out->stream_credit = get32(p + 4);
		return out->stream_credit >= 1 && out->stream_credit <= STREAM_WINDOW ? 0 : -EPROTO;
	case FRAME_DGRAM:
		return parse_dgram(out, p);
	default:
		return 0; /* FIN, CONNECTED: the id is all */
	}
}

/* MOVE: family (4 or 6, its length), reserved 0, port not 0, address. */
static int parse_move(struct frame *out, const uint8_t *p)
{
	unsigned alen = p[0] == 4 ? 4 : p[0] == 6 ? 16 : 0;

	if (!alen || out->len != 4 + alen || p[1] != 0)
		return -EPROTO;
	out->stream_addr.family = alen == 4 ? AF_INET : AF_INET6;
	memcpy(out->stream_addr.bytes, p + 4, alen);
	out->stream_port = get16(p + 2);
	return out->stream_port ? 0 : -EPROTO;
}

static int parse_payload(struct frame *out)
{
	const uint8_t *p = out->payload;

	switch (out->type) {
	case FRAME_HELLO:
		out->hello_version = p[0];
		out->hello_flags = p[1];
		return 0;
	case FRAME_PACKET:
		return parse_packet(out, p, out->len);
	case FRAME_PACKET_OFF:
		return parse_packet_off(out, p);
	case FRAME_STREAM_OPEN:
	case FRAME_STREAM_DATA:
	case FRAME_STREAM_FIN:
	case FRAME_STREAM_RESET:
	case FRAME_STREAM_CREDIT:
	case FRAME_DGRAM:
	case FRAME_STREAM_CONNECTED:
		return parse_stream(out);
	case FRAME_UDP_SETUP:
		out->udp_session_id = get32(p);
		return out->udp_session_id ? 0 : -EPROTO;
	case FRAME_UDP_PATH:
		out->udp_path = p[0];
		return p[0] <= 1 ? 0 : -EPROTO;
	case FRAME_MOVE:
		return parse_move(out, p);
	default:
		return 0;
	}
}

int frame_parse(const uint8_t *buf, size_t len, struct frame *out)
{
	uint32_t plen;

	if (len < FRAME_HEADER_LEN)
		return 0;
	plen = (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (!header_valid(buf[0], plen))
		return -EPROTO;
	if (len - FRAME_HEADER_LEN < plen)
		return 0;
	memset(out, 0, sizeof(*out));
	out->type = buf[0];
	out->payload = buf + FRAME_HEADER_LEN;
	out->len = plen;
	if (parse_payload(out) < 0)
		return -EPROTO;
	return (int)(FRAME_HEADER_LEN + plen);
}

size_t frame_packet_size(const struct pkt *p)
{
	return FRAME_HEADER_LEN + (pkt_is_plain(p) ? 0 : FRAME_OFFLOAD_LEN) + (size_t)p->len;
}

size_t frame_put_packet(uint8_t *buf, size_t cap, const struct pkt *p)
{
	size_t size = frame_packet_size(p);
	uint8_t *ip = buf + FRAME_HEADER_LEN;

	if (p->len > FRAME_IP_MAX || size > cap)
		return 0;
	if (pkt_is_plain(p)) {
		put_header(buf, FRAME_PACKET, p->len);
	} else {
		put_header(buf, FRAME_PACKET_OFF, FRAME_OFFLOAD_LEN + p->len);
		offload_encode(ip, &p->off);
		ip += FRAME_OFFLOAD_LEN;
	}
	memcpy(ip, p->data, p->len);
	return size;
}

size_t frame_put_hello(uint8_t *buf, size_t cap, uint8_t version, uint8_t flags)
{
	if (cap < FRAME_HEADER_LEN + FRAME_HELLO_LEN)
		return 0;
	put_header(buf, FRAME_HELLO, FRAME_HELLO_LEN);
	buf[4] = version;
	buf[5] = flags;
	buf[6] = 0;
	buf[7] = 0;
	return FRAME_HEADER_LEN + FRAME_HELLO_LEN;
}

/* A frame that is its header alone. */
static size_t put_empty(uint8_t *buf, size_t cap, uint8_t type)
{
	if (cap < FRAME_HEADER_LEN)
		return 0;
	put_header(buf, type, 0);
	return FRAME_HEADER_LEN;
}

size_t frame_put_keepalive(uint8_t *buf, size_t cap)
{
	return put_empty(buf, cap, FRAME_KEEPALIVE);
}

/* Cuts a reason at FRAME_CLOSE_REASON_MAX bytes without splitting a UTF-8 sequence. */
static size_t close_reason_len(const char *reason)
{
	size_t len = reason ? strnlen(reason, FRAME_CLOSE_REASON_MAX + 1) : 0;

	if (len <= FRAME_CLOSE_REASON_MAX)
		return len;
	len = FRAME_CLOSE_REASON_MAX;
	while (len > 0 && ((uint8_t)reason[len] & 0xc0) == 0x80)
		len--;
	return len;
}

size_t frame_put_close(uint8_t *buf, size_t cap, const char *reason)
{
	size_t len = close_reason_len(reason);

	if (cap < FRAME_HEADER_LEN + len)
		return 0;
	put_header(buf, FRAME_CLOSE, (uint32_t)len);
	if (len)
		memcpy(buf + FRAME_HEADER_LEN, reason, len);
	return FRAME_HEADER_LEN + len;
}

size_t frame_put_udp_setup(uint8_t *buf, size_t cap, uint32_t session_id)
{
	if (cap < FRAME_HEADER_LEN + FRAME_UDP_SETUP_LEN || !session_id)
		return 0;
	put_header(buf, FRAME_UDP_SETUP, FRAME_UDP_SETUP_LEN);
	put32(buf + FRAME_HEADER_LEN, session_id);
	return FRAME_HEADER_LEN + FRAME_UDP_SETUP_LEN;
}

size_t frame_put_udp_path(uint8_t *buf, size_t cap, bool on)
{
	if (cap < FRAME_HEADER_LEN + FRAME_UDP_PATH_LEN)
		return 0;
	put_header(buf, FRAME_UDP_PATH, FRAME_UDP_PATH_LEN);
	buf[FRAME_HEADER_LEN] = on;
	return FRAME_HEADER_LEN + FRAME_UDP_PATH_LEN;
}

static unsigned addr_len(const struct ip_addr *a)
{
	return a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;
}

size_t frame_put_move(uint8_t *buf, size_t cap, const struct ip_addr *addr, uint16_t port)
{
	unsigned alen = addr_len(addr);
	size_t plen = 4 + alen;

	if (!alen || !port || cap < FRAME_HEADER_LEN + plen)
		return 0;
	put_header(buf, FRAME_MOVE, (uint32_t)plen);
	buf[4] = alen == 4 ? 4 : 6;
	buf[5] = 0;
	put16(buf + 6, port);
	memcpy(buf + 8, addr->bytes, alen);
	return FRAME_HEADER_LEN + plen;
}

size_t frame_put_moved(uint8_t *buf, size_t cap)
{
	return put_empty(buf, cap, FRAME_MOVED);
}

/* ---- stream frames ---- */

/* After the id of OPEN and DGRAM: byte 4 (proto or reserved), family, port, address. */
static void put_endpoint(uint8_t *payload, uint8_t byte4, const struct ip_addr *a, uint16_t port)
{
	unsigned alen = addr_len(a);

	payload[4] = byte4;
	payload[5] = alen == 4 ? 4 : 6;
	put16(payload + 6, port);
	memcpy(payload + 8, a->bytes, alen);
}

size_t frame_put_stream_open(uint8_t *buf, size_t cap, uint32_t id, uint8_t proto,
			     const struct ip_addr *addr, uint16_t port)
{
	unsigned alen = addr_len(addr);
	size_t plen = 8 + alen;

	if (!alen || !id || !port || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) ||
	    cap < FRAME_HEADER_LEN + plen)
		return 0;
	put_header(buf, FRAME_STREAM_OPEN, (uint32_t)plen);
	put32(buf + 4, id);
	put_endpoint(buf + 4, proto, addr, port);
	return FRAME_HEADER_LEN + plen;
}

size_t frame_put_stream_data(uint8_t *buf, size_t cap, uint32_t id, const void *data, size_t len)
{
	size_t size = FRAME_HEADER_LEN + FRAME_STREAM_ID_LEN + len;

	if (!id || len == 0 || len > FRAME_STREAM_DATA_MAX || cap < size)
		return 0;
	put_header(buf, FRAME_STREAM_DATA, (uint32_t)(FRAME_STREAM_ID_LEN + len));
	put32(buf + 4, id);
	memcpy(buf + 8, data, len);
	return size;
}

static size_t put_stream_id_only(uint8_t *buf, size_t cap, uint8_t type, uint32_t id)
{
	if (!id || cap < FRAME_HEADER_LEN + FRAME_STREAM_ID_LEN)
		return 0;
	put_header(buf, type, FRAME_STREAM_ID_LEN);
	put32(buf + 4, id);
	return FRAME_HEADER_LEN + FRAME_STREAM_ID_LEN;
}

size_t frame_put_stream_fin(uint8_t *buf, size_t cap, uint32_t id)
{
	return put_stream_id_only(buf, cap, FRAME_STREAM_FIN, id);
}

size_t frame_put_stream_connected(uint8_t *buf, size_t cap, uint32_t id)
{
	return put_stream_id_only(buf, cap, FRAME_STREAM_CONNECTED, id);
}

size_t frame_put_stream_reset(uint8_t *buf, size_t cap, uint32_t id, uint8_t reason)
{
	if (!id || reason < 1 || reason > STREAM_RESET_REASON_MAX ||
	    cap < FRAME_HEADER_LEN + FRAME_STREAM_RESET_LEN)
		return 0;
	put_header(buf, FRAME_STREAM_RESET, FRAME_STREAM_RESET_LEN);
	put32(buf + 4, id);
	buf[8] = reason;
	return FRAME_HEADER_LEN + FRAME_STREAM_RESET_LEN;
}

size_t frame_put_stream_credit(uint8_t *buf, size_t cap, uint32_t id, uint32_t credit)
{
	if (!id || credit < 1 || credit > STREAM_WINDOW ||
	    cap < FRAME_HEADER_LEN + FRAME_STREAM_CREDIT_LEN)
		return 0;
	put_header(buf, FRAME_STREAM_CREDIT, FRAME_STREAM_CREDIT_LEN);
	put32(buf + 4, id);
	put32(buf + 8, credit);
	return FRAME_HEADER_LEN + FRAME_STREAM_CREDIT_LEN;
}

size_t frame_put_dgram(uint8_t *buf, size_t cap, uint32_t flow, const struct ip_addr *addr,
		       uint16_t port, const void *data, size_t len)
{
	unsigned alen = addr_len(addr);
	size_t plen = 8 + alen + len;

	if (!alen || !flow || !port || len > FRAME_DGRAM_MAX || cap < FRAME_HEADER_LEN + plen)
		return 0;
	put_header(buf, FRAME_DGRAM, (uint32_t)plen);
	put32(buf + 4, flow);
	put_endpoint(buf + 4, 0, addr, port);
	if (len)
		memcpy(buf + 12 + alen, data, len);
	return FRAME_HEADER_LEN + plen;
}
