/*
 * fuzz_pkt.c - libFuzzer target for the DPDK fast path's frame code
 * (dpdk/pkt.c).  The input is one Ethernet frame as received, parsed from
 * an exact-size copy (ASan catches any read outside it).  An accepted
 * frame's promises are checked (payload inside the frame; for UDP the
 * checksum verifies or is 0), then its reply is built and must parse back:
 *   UDP  - the payload echoed through pkt_udp_reply, parsed by the peer
 *          (the requester's address as "self") as a PKT_UDP_REQ with the
 *          same bytes; one byte less of room must refuse.
 *   ICMP - the echo reply: valid IPv4 and ICMP checksums, same id, seq
 *          and data; built in place over the request it must be the same.
 *   ARP  - the reply says our IP is at our MAC, to the asker.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpdk/pkt.h"
#include "fuzz_check.h"

static const struct pkt_self self = {
	.mac = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 },
	.ip = { 198, 18, 0, 1 },
	.udp_port = 9200,
};

static bool inside(const uint8_t *p, size_t n, const uint8_t *f, size_t len)
{
	return n == 0 || (p >= f && p + n <= f + len);
}

static void check_udp(const struct pkt_info *pi)
{
	size_t off = pkt_udp_payload_offset(), cap = off + pi->payload_len, n;
	uint8_t *r = malloc(cap);
	struct pkt_self peer;
	struct pkt_info back;

	FZ_CHECK(r);
	memcpy(r + off, pi->payload, pi->payload_len);
	FZ_CHECK(pkt_udp_reply(r, cap - 1, &self, pi, pi->payload_len) == 0);
	n = pkt_udp_reply(r, cap, &self, pi, pi->payload_len);
	FZ_CHECK(n == cap);
	memcpy(peer.mac, pi->src_mac, 6);
	memcpy(peer.ip, pi->src_ip, 4);
	peer.udp_port = pi->src_port;
	FZ_CHECK(pkt_parse(r, n, &peer, &back) == PKT_UDP_REQ);
	FZ_CHECK(back.src_port == self.udp_port && !memcmp(back.src_ip, self.ip, 4));
	FZ_CHECK(back.payload_len == pi->payload_len);
	FZ_CHECK(!memcmp(back.payload, pi->payload, pi->payload_len));
	free(r);
}

static void check_icmp(uint8_t *f, size_t len, const struct pkt_info *pi)
{
	size_t cap = 42 + pi->payload_len, n;
	uint8_t *r = malloc(cap);

	FZ_CHECK(r);
	FZ_CHECK(pkt_icmp_echo_reply(r, cap - 1, &self, pi) == 0);
	n = pkt_icmp_echo_reply(r, cap, &self, pi);
	FZ_CHECK(n == cap);
	FZ_CHECK(pkt_csum(r + 14, 20) == 0 && pkt_csum(r + 34, n - 34) == 0);
	FZ_CHECK(r[34] == 0 && r[35] == 0);
	FZ_CHECK((r[38] << 8 | r[39]) == pi->icmp_id && (r[40] << 8 | r[41]) == pi->icmp_seq);
	FZ_CHECK(!memcmp(r + 42, pi->payload, pi->payload_len));
	FZ_CHECK(!memcmp(r, pi->src_mac, 6) && !memcmp(r + 30, pi->src_ip, 4));
	/* in place: the reply never needs more room than the request had */
	FZ_CHECK(pkt_icmp_echo_reply(f, len, &self, pi) == n);
	FZ_CHECK(!memcmp(f, r, n));
	free(r);
}

static void check_arp(uint8_t *f, size_t len, const struct pkt_info *pi)
{
	uint8_t r[42];

	FZ_CHECK(pkt_arp_reply(r, sizeof(r) - 1, &self, pi) == 0);
	FZ_CHECK(pkt_arp_reply(r, sizeof(r), &self, pi) == 42);
	FZ_CHECK(!memcmp(r, pi->src_mac, 6) && !memcmp(r + 6, self.mac, 6));
	FZ_CHECK(r[20] == 0 && r[21] == 2);
	FZ_CHECK(!memcmp(r + 22, self.mac, 6) && !memcmp(r + 28, self.ip, 4));
	FZ_CHECK(!memcmp(r + 32, pi->src_mac, 6) && !memcmp(r + 38, pi->src_ip, 4));
	FZ_CHECK(pkt_arp_reply(f, len, &self, pi) == 42 && !memcmp(f, r, 42));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *f = malloc(size ? size : 1);
	struct pkt_info pi;
	enum pkt_verdict v;

	FZ_CHECK(f);
	memcpy(f, data, size);
	v = pkt_parse(f, size, &self, &pi);
	FZ_CHECK((unsigned)v < PKT_VERDICT_COUNT);
	FZ_CHECK(strcmp(pkt_verdict_name(v), "unknown") != 0);
	FZ_CHECK(pkt_verdict_is_drop(v) == (v != PKT_UDP_REQ && v != PKT_ARP_REQ &&
					     v != PKT_ICMP_ECHO && v != PKT_UDP_OVERSIZE));
	FZ_CHECK(inside(pi.payload, pi.payload_len, f, size));
	switch (v) {
	case PKT_UDP_REQ:
		FZ_CHECK(pi.dst_port == self.udp_port && pi.src_port != 0);
		FZ_CHECK(!memcmp(pi.dst_ip, self.ip, 4));
		check_udp(&pi);
		break;
	case PKT_UDP_OVERSIZE:	/* a first fragment: answered, never parsed whole */
		FZ_CHECK(pi.dst_port == self.udp_port && pi.src_port != 0);
		FZ_CHECK(!memcmp(pi.dst_ip, self.ip, 4));
		FZ_CHECK(pi.udp_len > pi.payload_len + 8);
		break;
	case PKT_ICMP_ECHO:
		check_icmp(f, size, &pi);
		break;
	case PKT_ARP_REQ:
		check_arp(f, size, &pi);
		break;
	default:
		break;
	}
	free(f);
	return 0;
}
