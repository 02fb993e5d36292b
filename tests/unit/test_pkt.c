/* Unit tests for dpdk/pkt.c: every verdict from crafted frames, checksums
 * against Python-computed values, replies parsed back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdk/pkt.h"

static const struct pkt_self self = {
	.mac = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 },
	.ip = { 198, 18, 0, 1 },
	.udp_port = 9200,
};
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };
static const uint8_t peer_ip[4] = { 198, 18, 0, 2 };

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)(p[0] << 8 | p[1]);
}

/* An independent checksum: the plain RFC 1071 loop. */
static unsigned naive_csum(const uint8_t *p, size_t n, unsigned long start)
{
	unsigned long s = start;

	for (size_t i = 0; i < n; i += 2)
		s += (unsigned long)p[i] << 8 | (i + 1 < n ? p[i + 1] : 0);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (unsigned)(~s & 0xffff);
}

static void eth(uint8_t *f, const uint8_t *dst, unsigned type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, type);
}

/* An IPv4 header (no options) at f+14 carrying plen bytes of proto; checksum set. */
static void ip4(uint8_t *f, unsigned proto, size_t plen, const uint8_t *dst)
{
	uint8_t *ip = f + 14;

	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (unsigned)(20 + plen));
	put16(ip + 4, 0x1234);
	put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = (uint8_t)proto;
	memcpy(ip + 12, peer_ip, 4);
	memcpy(ip + 16, dst, 4);
	put16(ip + 10, naive_csum(ip, 20, 0));
}

static unsigned udp_csum_naive(const uint8_t *src, const uint8_t *dst, const uint8_t *u, size_t n)
{
	uint8_t ps[12];

	memcpy(ps, src, 4);
	memcpy(ps + 4, dst, 4);
	ps[8] = 0;
	ps[9] = 17;
	put16(ps + 10, (unsigned)n);
	unsigned long s = 0xffff & ~naive_csum(ps, 12, 0);
	return naive_csum(u, n, s);
}

/* A whole UDP frame from peer:40000 to us:9200 with payload; returns its length. */
static size_t udp_frame(uint8_t *f, const void *payload, size_t plen)
{
	uint8_t *u = f + 34;

	eth(f, self.mac, 0x0800);
	ip4(f, 17, 8 + plen, self.ip);
	put16(u, 40000);
	put16(u + 2, 9200);
	put16(u + 4, (unsigned)(8 + plen));
	put16(u + 6, 0);
	memcpy(u + 8, payload, plen);
	put16(u + 6, udp_csum_naive(peer_ip, self.ip, u, 8 + plen));
	return 34 + 8 + plen;
}

static size_t icmp_frame(uint8_t *f, const void *data, size_t dlen)
{
	uint8_t *ic = f + 34;

	eth(f, self.mac, 0x0800);
	ip4(f, 1, 8 + dlen, self.ip);
	ic[0] = 8;
	ic[1] = 0;
	put16(ic + 2, 0);
	put16(ic + 4, 0x77);
	put16(ic + 6, 3);
	memcpy(ic + 8, data, dlen);
	put16(ic + 2, naive_csum(ic, 8 + dlen, 0));
	return 34 + 8 + dlen;
}

static size_t arp_frame(uint8_t *f, const uint8_t *target, unsigned oper)
{
	uint8_t *a = f + 14;

	eth(f, (const uint8_t[6]){ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, oper);
	memcpy(a + 8, peer_mac, 6);
	memcpy(a + 14, peer_ip, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, target, 4);
	return 42;
}

static enum pkt_verdict parse(const uint8_t *f, size_t n, struct pkt_info *pi)
{
	return pkt_parse(f, n, &self, pi);
}

/* ---- checksums ---- */

static void test_csum_known(void **state)
{
	/* RFC 1071 / Wikipedia's IPv4 header example: checksum 0xb861 */
	static const uint8_t wiki[20] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40,
		0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };
	uint8_t f[128], ip[20];

	assert_int_equal(pkt_csum(wiki, 20), 0xb861);
	memcpy(ip, wiki, 20);
	put16(ip + 10, 0xb861);
	assert_int_equal(pkt_csum(ip, 20), 0);
	/* values from Python (struct + the RFC 1071 sum): UDP 198.18.0.2:40000 ->
	 * 198.18.0.1:9200 "hello" is 0x6fa9; its IPv4 header (id 0x1234, DF,
	 * TTL 64) is 0x9c70; an echo request id 0x77 seq 3 "abcdefgh" is 0x65f0 */
	udp_frame(f, "hello", 5);
	assert_int_equal(get16(f + 34 + 6), 0x6fa9);
	assert_int_equal(get16(f + 14 + 10), 0x9c70);
	put16(f + 34 + 6, 0);
	assert_int_equal(pkt_udp_csum(peer_ip, self.ip, f + 34, 13), 0x6fa9);
	put16(f + 34 + 6, 0x6fa9);
	assert_int_equal(pkt_udp_csum(peer_ip, self.ip, f + 34, 13), 0);
	icmp_frame(f, "abcdefgh", 8);
	assert_int_equal(get16(f + 34 + 2), 0x65f0);
	/* chaining an even chunk then the rest equals the whole */
	assert_int_equal(pkt_csum_fold(pkt_csum_add(pkt_csum_add(0, wiki, 8), wiki + 8, 12)),
			 0xb861);
	/* odd length pads with a zero byte */
	assert_int_equal(pkt_csum((const uint8_t[]){ 0x01 }, 1), 0xfeff);
	/* carries fold: 0xffff + 0x0001 = 0x0001 after the end-around carry */
	assert_int_equal(pkt_csum((const uint8_t[]){ 0xff, 0xff, 0x00, 0x01 }, 4), 0xfffe);
}

/* ---- verdicts ---- */

static void test_udp_req(void **state)
{
	uint8_t f[128];
	struct pkt_info pi;
	size_t n = udp_frame(f, "hello", 5);

	assert_int_equal(parse(f, n, &pi), PKT_UDP_REQ);
	assert_memory_equal(pi.src_mac, peer_mac, 6);
	assert_memory_equal(pi.dst_mac, self.mac, 6);
	assert_memory_equal(pi.src_ip, peer_ip, 4);
	assert_memory_equal(pi.dst_ip, self.ip, 4);
	assert_int_equal(pi.src_port, 40000);
	assert_int_equal(pi.dst_port, 9200);
	assert_int_equal(pi.ttl, 64);
	assert_int_equal(pi.payload_len, 5);
	assert_ptr_equal(pi.payload, f + 42);
	/* Ethernet padding to 60 bytes after the IPv4 total length is ignored */
	memset(f + n, 0xee, 60 - n);
	assert_int_equal(parse(f, 60, &pi), PKT_UDP_REQ);
	assert_int_equal(pi.payload_len, 5);
	/* checksum 0: none, legal in IPv4 */
	put16(f + 34 + 6, 0);
	assert_int_equal(parse(f, n, &pi), PKT_UDP_REQ);
	/* empty payload */
	n = udp_frame(f, "", 0);
	assert_int_equal(parse(f, n, &pi), PKT_UDP_REQ);
	assert_int_equal(pi.payload_len, 0);
}

static void test_udp_with_ip_options(void **state)
{
	uint8_t f[128];
	struct pkt_info pi;
	uint8_t *ip = f + 14, *u = f + 38;

	/* ihl 6: 4 bytes of options (NOPs + EOL) */
	eth(f, self.mac, 0x0800);
	memset(ip, 0, 24);
	ip[0] = 0x46;
	put16(ip + 2, 24 + 8 + 3);
	ip[8] = 5;
	ip[9] = 17;
	memcpy(ip + 12, peer_ip, 4);
	memcpy(ip + 16, self.ip, 4);
	ip[20] = 1, ip[21] = 1, ip[22] = 1, ip[23] = 0;
	put16(ip + 10, naive_csum(ip, 24, 0));
	put16(u, 5000);
	put16(u + 2, 9200);
	put16(u + 4, 11);
	put16(u + 6, 0);
	memcpy(u + 8, "abc", 3);
	put16(u + 6, udp_csum_naive(peer_ip, self.ip, u, 11));
	assert_int_equal(parse(f, 14 + 35, &pi), PKT_UDP_REQ);
	assert_int_equal(pi.payload_len, 3);
	assert_memory_equal(pi.payload, "abc", 3);
	assert_int_equal(pi.src_port, 5000);
	assert_int_equal(pi.ttl, 5);
}

static void test_drops_eth(void **state)
{
	uint8_t f[128];
	struct pkt_info pi;
	size_t n = udp_frame(f, "hello", 5);

	assert_int_equal(parse(f, 13, &pi), PKT_DROP_SHORT);
	assert_int_equal(parse(NULL, 0, &pi), PKT_DROP_SHORT);
	assert_int_equal(parse(f, 14 + 19, &pi), PKT_DROP_SHORT);
	f[0] = 0x04;				/* another unicast MAC */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_MAC);
	memcpy(f, self.mac, 6);
	put16(f + 12, 0x8100);			/* VLAN */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_ETHERTYPE);
	put16(f + 12, 0x86dd);			/* IPv6 */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_ETHERTYPE);
	put16(f + 12, 0x0800);
	f[6] = 0x01;				/* multicast source MAC */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_SRC);
}

static void test_drops_ip(void **state)
{
	uint8_t f[128];
	struct pkt_info pi;
	size_t n;

	n = udp_frame(f, "hello", 5);
	f[14] = 0x65;
	assert_int_equal(parse(f, n, &pi), PKT_DROP_IP_VERSION);

	n = udp_frame(f, "hello", 5);
	f[14] = 0x44;				/* ihl 4 */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_IP_HDR);
	n = udp_frame(f, "hello", 5);
	put16(f + 16, 20 + 13 + 1);		/* total length past the frame */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_IP_HDR);
	n = udp_frame(f, "hello", 5);
	assert_int_equal(parse(f, n - 1, &pi), PKT_DROP_IP_HDR);	/* truncated */
	n = udp_frame(f, "hello", 5);
	put16(f + 16, 19);			/* total < ihl */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_IP_HDR);

	n = udp_frame(f, "hello", 5);
	f[14 + 10] ^= 0x01;
	assert_int_equal(parse(f, n, &pi), PKT_DROP_IP_CSUM);

	n = udp_frame(f, "hello", 5);
	put16(f + 20, 0x2000);			/* MF */
	put16(f + 24, 0);
	put16(f + 24, naive_csum(f + 14, 20, 0));
	assert_int_equal(parse(f, n, &pi), PKT_DROP_FRAGMENT);
	/* The first fragment of a larger datagram to our port: answerable
	 * (the sender hears it does not fit), the rest of it never arrives
	 * here whole. */
	put16(f + 34 + 4, 4000);		/* UDP length: the whole datagram */
	assert_int_equal(parse(f, n, &pi), PKT_UDP_OVERSIZE);
	assert_int_equal(pi.udp_len, 4000);
	assert_int_equal(pi.payload_len, 5);
	assert_memory_equal(pi.payload, "hello", 5);
	assert_false(pkt_verdict_is_drop(PKT_UDP_OVERSIZE));
	assert_string_equal(pkt_verdict_name(PKT_UDP_OVERSIZE), "udp_oversize");
	put16(f + 34 + 2, 9999);		/* ... to another port: dropped */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_PORT);
	put16(f + 34 + 2, 9200);
	put16(f + 20, 0x0001);			/* offset 8 */
	put16(f + 24, 0);
	put16(f + 24, naive_csum(f + 14, 20, 0));
	assert_int_equal(parse(f, n, &pi), PKT_DROP_FRAGMENT);

	n = udp_frame(f, "hello", 5);
	ip4(f, 17, 13, (const uint8_t[4]){ 198, 18, 0, 9 });
	assert_int_equal(parse(f, n, &pi), PKT_DROP_NOT_US);

	n = udp_frame(f, "hello", 5);
	f[14 + 12] = 224;			/* multicast source */
	put16(f + 24, 0);
	put16(f + 24, naive_csum(f + 14, 20, 0));
	assert_int_equal(parse(f, n, &pi), PKT_DROP_SRC);

	n = udp_frame(f, "hello", 5);
	ip4(f, 6, 13, self.ip);			/* TCP */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_PROTO);
}

static void test_drops_udp(void **state)
{
	uint8_t f[128];
	struct pkt_info pi;
	size_t n;

	n = udp_frame(f, "hello", 5);
	put16(f + 34 + 4, 12);			/* UDP length != IPv4 payload */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_UDP_LEN);
	put16(f + 34 + 4, 7);
	assert_int_equal(parse(f, n, &pi), PKT_DROP_UDP_LEN);
	n = udp_frame(f, "hello", 5);
	ip4(f, 17, 4, self.ip);			/* an IPv4 payload shorter than a UDP header */
	assert_int_equal(parse(f, 14 + 24, &pi), PKT_DROP_UDP_LEN);

	n = udp_frame(f, "hello", 5);
	f[n - 1] ^= 0x20;			/* payload changed after the checksum */
	assert_int_equal(parse(f, n, &pi), PKT_DROP_UDP_CSUM);

	n = udp_frame(f, "hello", 5);
	put16(f + 34 + 2, 9201);
	put16(f + 34 + 6, 0);
	assert_int_equal(parse(f, n, &pi), PKT_DROP_PORT);
	n = udp_frame(f, "hello", 5);
	put16(f + 34, 0);			/* source port 0: nowhere to answer */
	put16(f + 34 + 6, 0);
	assert_int_equal(parse(f, n, &pi), PKT_DROP_PORT);
}

static void test_arp(void **state)
{
	uint8_t f[128];
	struct pkt_info pi;

	arp_frame(f, self.ip, 1);
	assert_int_equal(parse(f, 42, &pi), PKT_ARP_REQ);
	assert_memory_equal(pi.src_mac, peer_mac, 6);
	assert_memory_equal(pi.src_ip, peer_ip, 4);
	assert_memory_equal(pi.dst_ip, self.ip, 4);
	assert_int_equal(parse(f, 60, &pi), PKT_ARP_REQ);	/* padded */
	assert_int_equal(parse(f, 41, &pi), PKT_DROP_SHORT);
	arp_frame(f, self.ip, 2);				/* a reply */
	assert_int_equal(parse(f, 42, &pi), PKT_DROP_ARP);
	arp_frame(f, (const uint8_t[4]){ 198, 18, 0, 7 }, 1);	/* someone else */
	assert_int_equal(parse(f, 42, &pi), PKT_DROP_ARP);
	arp_frame(f, self.ip, 1);
	f[14 + 4] = 8;						/* hlen */
	assert_int_equal(parse(f, 42, &pi), PKT_DROP_ARP);
	arp_frame(f, self.ip, 1);
	put16(f + 16, 0x86dd);					/* ptype */
	assert_int_equal(parse(f, 42, &pi), PKT_DROP_ARP);
	arp_frame(f, self.ip, 1);
	memset(f + 14 + 14, 0, 4);				/* probe from 0.0.0.0 */
	assert_int_equal(parse(f, 42, &pi), PKT_DROP_SRC);
}

static void test_icmp(void **state)
{
	uint8_t f[128];
	struct pkt_info pi;
	size_t n = icmp_frame(f, "abcdefgh", 8);

	assert_int_equal(parse(f, n, &pi), PKT_ICMP_ECHO);
	assert_int_equal(pi.icmp_id, 0x77);
	assert_int_equal(pi.icmp_seq, 3);
	assert_int_equal(pi.payload_len, 8);
	assert_memory_equal(pi.payload, "abcdefgh", 8);
	f[n - 1] ^= 1;
	assert_int_equal(parse(f, n, &pi), PKT_DROP_ICMP);
	n = icmp_frame(f, "abcdefgh", 8);
	f[34] = 0;				/* an echo reply is not answered */
	put16(f + 36, 0);
	put16(f + 36, naive_csum(f + 34, 16, 0));
	assert_int_equal(parse(f, n, &pi), PKT_DROP_ICMP);
	n = icmp_frame(f, "", 0);
	ip4(f, 1, 4, self.ip);			/* 4 bytes of ICMP */
	assert_int_equal(parse(f, 14 + 24, &pi), PKT_DROP_ICMP);
}

static void test_names(void **state)
{
	assert_string_equal(pkt_verdict_name(PKT_UDP_REQ), "udp_req");
	assert_string_equal(pkt_verdict_name(PKT_DROP_IP_CSUM), "ip_csum");
	assert_string_equal(pkt_verdict_name(PKT_DROP_ICMP), "icmp");
	assert_string_equal(pkt_verdict_name(PKT_VERDICT_COUNT), "unknown");
	assert_string_equal(pkt_verdict_name((enum pkt_verdict)-1), "unknown");
	for (int v = 0; v < PKT_VERDICT_COUNT; v++) {
		assert_string_not_equal(pkt_verdict_name(v), "unknown");
		for (int w = 0; w < v; w++)
			assert_string_not_equal(pkt_verdict_name(v), pkt_verdict_name(w));
	}
	assert_false(pkt_verdict_is_drop(PKT_UDP_REQ));
	assert_false(pkt_verdict_is_drop(PKT_ICMP_ECHO));
	assert_true(pkt_verdict_is_drop(PKT_DROP_SHORT));
	assert_true(pkt_verdict_is_drop(PKT_DROP_ICMP));
}

/* ---- replies, parsed back as the peer would see them ---- */

/* The peer's view: swap roles so pkt_parse can check a reply to the peer. */
static const struct pkt_self peer = {
	.mac = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 },
	.ip = { 198, 18, 0, 2 },
	.udp_port = 40000,
};

static void test_arp_reply(void **state)
{
	uint8_t f[128], r[64];
	struct pkt_info pi;
	size_t n;

	arp_frame(f, self.ip, 1);
	assert_int_equal(parse(f, 42, &pi), PKT_ARP_REQ);
	assert_int_equal(pkt_arp_reply(r, 41, &self, &pi), 0);
	n = pkt_arp_reply(r, sizeof(r), &self, &pi);
	assert_int_equal(n, 42);
	assert_memory_equal(r, peer_mac, 6);
	assert_memory_equal(r + 6, self.mac, 6);
	assert_int_equal(get16(r + 12), 0x0806);
	assert_int_equal(get16(r + 14 + 6), 2);
	assert_memory_equal(r + 14 + 8, self.mac, 6);
	assert_memory_equal(r + 14 + 14, self.ip, 4);
	assert_memory_equal(r + 14 + 18, peer_mac, 6);
	assert_memory_equal(r + 14 + 24, peer_ip, 4);
	/* in place */
	n = pkt_arp_reply(f, sizeof(f), &self, &pi);
	assert_memory_equal(f, r, 42);
}

static void test_icmp_reply(void **state)
{
	uint8_t f[128], r[128];
	struct pkt_info pi, back;
	size_t n = icmp_frame(f, "abcdefghij", 10), m;

	assert_int_equal(parse(f, n, &pi), PKT_ICMP_ECHO);
	assert_int_equal(pkt_icmp_echo_reply(r, 51, &self, &pi), 0);
	m = pkt_icmp_echo_reply(r, sizeof(r), &self, &pi);
	assert_int_equal(m, 52);
	assert_memory_equal(r, peer_mac, 6);
	assert_int_equal(r[34], 0);				/* echo reply */
	assert_int_equal(naive_csum(r + 14, 20, 0), 0);		/* IPv4 header checksum */
	assert_int_equal(naive_csum(r + 34, 18, 0), 0);		/* ICMP checksum */
	assert_int_equal(get16(r + 38), 0x77);
	assert_int_equal(get16(r + 40), 3);
	assert_memory_equal(r + 42, "abcdefghij", 10);
	assert_memory_equal(r + 14 + 12, self.ip, 4);
	assert_memory_equal(r + 14 + 16, peer_ip, 4);
	/* as the peer would parse it: a valid IPv4/ICMP packet, to the peer
	 * (type 0 is "not an echo request", which is all the parser says) */
	assert_int_equal(pkt_parse(r, m, &peer, &back), PKT_DROP_ICMP);
	assert_memory_equal(back.src_ip, self.ip, 4);
	/* in place: the reply overwrites the request it was built from */
	m = pkt_icmp_echo_reply(f, sizeof(f), &self, &pi);
	assert_memory_equal(f, r, m);
}

static void test_udp_reply(void **state)
{
	uint8_t f[128], r[128];
	struct pkt_info pi, back;
	size_t n = udp_frame(f, "hello", 5), off = pkt_udp_payload_offset(), m;

	assert_int_equal(off, 42);
	assert_int_equal(pkt_udp_payload_max(41), 0);
	assert_int_equal(pkt_udp_payload_max(1514), 1472);
	assert_int_equal(pkt_udp_payload_max(1 << 20), 65507);
	assert_int_equal(parse(f, n, &pi), PKT_UDP_REQ);
	memcpy(r + off, "answer!", 7);
	assert_int_equal(pkt_udp_reply(r, 48, &self, &pi, 7), 0);
	assert_int_equal(pkt_udp_reply(r, sizeof(r), &self, &pi, 65508), 0);
	m = pkt_udp_reply(r, sizeof(r), &self, &pi, 7);
	assert_int_equal(m, 49);
	assert_int_equal(pkt_parse(r, m, &peer, &back), PKT_UDP_REQ);
	assert_memory_equal(back.src_mac, self.mac, 6);
	assert_memory_equal(back.dst_mac, peer_mac, 6);
	assert_memory_equal(back.src_ip, self.ip, 4);
	assert_int_equal(back.src_port, 9200);
	assert_int_equal(back.dst_port, 40000);
	assert_int_equal(back.payload_len, 7);
	assert_memory_equal(back.payload, "answer!", 7);
	assert_int_equal(back.ttl, 64);
	assert_int_equal(get16(r + 20) & 0x4000, 0x4000);	/* DF */
	assert_int_not_equal(get16(r + 40), 0);			/* a checksum was set */
	assert_int_equal(udp_csum_naive(self.ip, peer_ip, r + 34, 15), 0);
}

/* A payload whose checksum computes to 0 goes out as 0xffff. */
static void test_udp_reply_csum_ffff(void **state)
{
	uint8_t f[128], r[128];
	struct pkt_info pi, back;
	size_t n = udp_frame(f, "x", 1), m;

	assert_int_equal(parse(f, n, &pi), PKT_UDP_REQ);
	/* pick 2 payload bytes so the computed checksum is 0 (sum 0xffff) */
	memset(r + 42, 0, 2);
	m = pkt_udp_reply(r, sizeof(r), &self, &pi, 2);
	unsigned c = get16(r + 40);				/* checksum with payload 0 */
	/* adding (c) as a word of the payload makes the sum 0xffff -> ~ = 0 */
	put16(r + 42, c);
	m = pkt_udp_reply(r, sizeof(r), &self, &pi, 2);
	assert_int_equal(get16(r + 40), 0xffff);
	assert_int_equal(pkt_parse(r, m, &peer, &back), PKT_UDP_REQ);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csum_known),
		cmocka_unit_test(test_udp_req),
		cmocka_unit_test(test_udp_with_ip_options),
		cmocka_unit_test(test_drops_eth),
		cmocka_unit_test(test_drops_ip),
		cmocka_unit_test(test_drops_udp),
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_icmp),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_arp_reply),
		cmocka_unit_test(test_icmp_reply),
		cmocka_unit_test(test_udp_reply),
		cmocka_unit_test(test_udp_reply_csum_ffff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
