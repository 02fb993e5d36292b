/*
 * pkt.c - see pkt.h.  Every length is checked against the bytes present
 * before a field is read: the frame comes from anyone on the wire.
 */
#include "pkt.h"

#include <string.h>

#define ETHERTYPE_IPV4	0x0800
#define ETHERTYPE_ARP	0x0806
#define IPPROTO_ICMP_	1
#define IPPROTO_UDP_	17
#define ICMP_ECHO_REPLY	0
#define ICMP_ECHO_REQ	8
#define REPLY_TTL	64

static const uint8_t broadcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

uint32_t pkt_csum_add(uint32_t sum, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t s = sum;	/* 64 bits: no fold needed inside the loop */
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		s += (uint32_t)b[len - 1] << 8;
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

uint16_t pkt_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint16_t pkt_csum(const void *p, size_t len)
{
	return pkt_csum_fold(pkt_csum_add(0, p, len));
}

uint16_t pkt_udp_csum(const uint8_t src[4], const uint8_t dst[4], const void *udp, size_t len)
{
	uint8_t pseudo[12];

	memcpy(pseudo, src, 4);
	memcpy(pseudo + 4, dst, 4);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_UDP_;
	put16(pseudo + 10, (uint16_t)len);
	return pkt_csum_fold(pkt_csum_add(pkt_csum_add(0, pseudo, sizeof(pseudo)), udp, len));
}

static const char *const verdict_names[PKT_VERDICT_COUNT] = {
	[PKT_UDP_REQ] = "udp_req",
	[PKT_ARP_REQ] = "arp_req",
	[PKT_ICMP_ECHO] = "icmp_echo",
	[PKT_UDP_OVERSIZE] = "udp_oversize",
	[PKT_DROP_SHORT] = "short",
	[PKT_DROP_MAC] = "mac",
	[PKT_DROP_ETHERTYPE] = "ethertype",
	[PKT_DROP_IP_VERSION] = "ip_version",
	[PKT_DROP_IP_HDR] = "ip_hdr",
	[PKT_DROP_IP_CSUM] = "ip_csum",
	[PKT_DROP_FRAGMENT] = "fragment",
	[PKT_DROP_NOT_US] = "not_us",
	[PKT_DROP_SRC] = "src",
	[PKT_DROP_PROTO] = "proto",
	[PKT_DROP_UDP_LEN] = "udp_len",
	[PKT_DROP_UDP_CSUM] = "udp_csum",
	[PKT_DROP_PORT] = "port",
	[PKT_DROP_ARP] = "arp",
	[PKT_DROP_ICMP] = "icmp",
};

const char *pkt_verdict_name(enum pkt_verdict v)
{
	if ((unsigned)v >= PKT_VERDICT_COUNT || !verdict_names[v])
		return "unknown";
	return verdict_names[v];
}

bool pkt_verdict_is_drop(enum pkt_verdict v)
{
	return v >= PKT_DROP_SHORT && v < PKT_VERDICT_COUNT;
}

/* An address we cannot send an answer to: 0.0.0.0, 255.255.255.255, or
 * multicast (224.0.0.0/4). */
static bool ip_unanswerable(const uint8_t ip[4])
{
	static const uint8_t zero[4], bcast[4] = { 255, 255, 255, 255 };

	return !memcmp(ip, zero, 4) || !memcmp(ip, bcast, 4) || (ip[0] & 0xf0) == 0xe0;
}

static enum pkt_verdict parse_arp(const uint8_t *a, size_t len, const struct pkt_self *self,
				  struct pkt_info *out)
{
	if (len < PKT_ARP_LEN)
		return PKT_DROP_SHORT;
	/* htype Ethernet, ptype IPv4, hlen 6, plen 4, oper request */
	if (get16(a) != 1 || get16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 ||
	    get16(a + 6) != 1)
		return PKT_DROP_ARP;
	memcpy(out->src_mac, a + 8, 6);
	memcpy(out->src_ip, a + 14, 4);
	memcpy(out->dst_ip, a + 24, 4);
	if (memcmp(out->dst_ip, self->ip, 4))
		return PKT_DROP_ARP;
	if (out->src_mac[0] & 1)
		return PKT_DROP_SRC;
	/* an ARP probe (sender 0.0.0.0, RFC 5227) wants no answer from us
	 * that a normal reply would not give; but we cannot address it */
	if (ip_unanswerable(out->src_ip))
		return PKT_DROP_SRC;
	return PKT_ARP_REQ;
}

static enum pkt_verdict parse_icmp(const uint8_t *ic, size_t len, struct pkt_info *out)
{
	if (len < PKT_ICMP_HLEN)
		return PKT_DROP_ICMP;
	if (ic[0] != ICMP_ECHO_REQ || ic[1] != 0 || pkt_csum(ic, len) != 0)
		return PKT_DROP_ICMP;
	out->icmp_id = get16(ic + 4);
	out->icmp_seq = get16(ic + 6);
	out->payload = ic + PKT_ICMP_HLEN;
	out->payload_len = len - PKT_ICMP_HLEN;
	return PKT_ICMP_ECHO;
}

/* The ports and payload of the UDP header at u (len bytes of it here):
 * verdict for a datagram to our port from an answerable one, else PORT. */
static enum pkt_verdict udp_take(const uint8_t *u, size_t len, const struct pkt_self *self,
				 struct pkt_info *out, enum pkt_verdict verdict)
{
	out->src_port = get16(u);
	out->dst_port = get16(u + 2);
	if (out->dst_port != self->udp_port || out->src_port == 0)
		return PKT_DROP_PORT;
	out->payload = u + PKT_UDP_HLEN;
	out->payload_len = len - PKT_UDP_HLEN;
	out->udp_len = get16(u + 4);
	return verdict;
}

static enum pkt_verdict parse_udp(const uint8_t *u, size_t len, const struct pkt_self *self,
				  struct pkt_info *out)
{
	if (len < PKT_UDP_HLEN || get16(u + 4) != len)
		return PKT_DROP_UDP_LEN;
	if (get16(u + 6) != 0 && pkt_udp_csum(out->src_ip, out->dst_ip, u, len) != 0)
		return PKT_DROP_UDP_CSUM;
	return udp_take(u, len, self, out, PKT_UDP_REQ);
}

/*
 * The first fragment (len bytes of IPv4 payload) of a datagram: only its
 * UDP header can be checked (length and checksum cover the whole
 * datagram), but it says who to answer that the request does not fit.
 */
static enum pkt_verdict parse_udp_first(const uint8_t *u, size_t len,
					const struct pkt_self *self, struct pkt_info *out)
{
	if (len < PKT_UDP_HLEN || get16(u + 4) <= len)
		return PKT_DROP_FRAGMENT;
	return udp_take(u, len, self, out, PKT_UDP_OVERSIZE);
}

/* The IPv4 packet at ip, avail bytes of frame after the Ethernet header. */
static enum pkt_verdict parse_ipv4(const uint8_t *ip, size_t avail, const struct pkt_self *self,
				   struct pkt_info *out)
{
	size_t ihl, total;

	if (avail < PKT_IP_HLEN)
		return PKT_DROP_SHORT;
	if (ip[0] >> 4 != 4)
		return PKT_DROP_IP_VERSION;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	total = get16(ip + 2);
	if (ihl < PKT_IP_HLEN || total < ihl || total > avail)
		return PKT_DROP_IP_HDR;
	if (pkt_csum(ip, ihl) != 0)
		return PKT_DROP_IP_CSUM;
	if (get16(ip + 6) & 0x1fff)	/* a later fragment: nothing to answer with */
		return PKT_DROP_FRAGMENT;
	out->ttl = ip[8];
	memcpy(out->src_ip, ip + 12, 4);
	memcpy(out->dst_ip, ip + 16, 4);
	if (memcmp(out->dst_ip, self->ip, 4))
		return PKT_DROP_NOT_US;
	if (ip_unanswerable(out->src_ip) || (out->src_mac[0] & 1))
		return PKT_DROP_SRC;
	if (get16(ip + 6) & 0x2000)	/* MF: the first of several; we do not reassemble */
		return ip[9] == IPPROTO_UDP_ ? parse_udp_first(ip + ihl, total - ihl, self, out)
					     : PKT_DROP_FRAGMENT;
	switch (ip[9]) {
	case IPPROTO_UDP_:
		return parse_udp(ip + ihl, total - ihl, self, out);
	case IPPROTO_ICMP_:
		return parse_icmp(ip + ihl, total - ihl, out);
	default:
		return PKT_DROP_PROTO;
	}
}

enum pkt_verdict pkt_parse(const uint8_t *frame, size_t len, const struct pkt_self *self,
			   struct pkt_info *out)
{
	uint16_t type;

	memset(out, 0, sizeof(*out));
	if (!frame || len < PKT_ETH_HLEN)
		return PKT_DROP_SHORT;
	memcpy(out->dst_mac, frame, 6);
	memcpy(out->src_mac, frame + 6, 6);
	if (memcmp(out->dst_mac, self->mac, 6) && memcmp(out->dst_mac, broadcast_mac, 6))
		return PKT_DROP_MAC;
	type = get16(frame + 12);
	if (type == ETHERTYPE_ARP)
		return parse_arp(frame + PKT_ETH_HLEN, len - PKT_ETH_HLEN, self, out);
	if (type != ETHERTYPE_IPV4)
		return PKT_DROP_ETHERTYPE;
	return parse_ipv4(frame + PKT_ETH_HLEN, len - PKT_ETH_HLEN, self, out);
}

/* ---- replies ---- */

static void put_eth(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(b, dst, 6);
	memcpy(b + 6, src, 6);
	put16(b + 12, type);
}

/* A 20-byte IPv4 header carrying payload_len bytes of proto, with its checksum. */
static void put_ipv4(uint8_t *ip, const uint8_t src[4], const uint8_t dst[4], uint8_t proto,
		     size_t payload_len)
{
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(PKT_IP_HLEN + payload_len));
	put16(ip + 4, 0);		/* ID: DF is set, nothing to reassemble */
	put16(ip + 6, 0x4000);		/* DF */
	ip[8] = REPLY_TTL;
	ip[9] = proto;
	put16(ip + 10, 0);
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	put16(ip + 10, pkt_csum(ip, PKT_IP_HLEN));
}

size_t pkt_arp_reply(uint8_t *buf, size_t cap, const struct pkt_self *self,
		     const struct pkt_info *req)
{
	uint8_t *a = buf + PKT_ETH_HLEN;
	uint8_t tha[6], tpa[4];
	size_t n = PKT_ETH_HLEN + PKT_ARP_LEN;

	if (cap < n)
		return 0;
	/* req may point into buf: copy the asker first */
	memcpy(tha, req->src_mac, 6);
	memcpy(tpa, req->src_ip, 4);
	put_eth(buf, tha, self->mac, ETHERTYPE_ARP);
	put16(a, 1);
	put16(a + 2, ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 2);		/* reply */
	memcpy(a + 8, self->mac, 6);
	memcpy(a + 14, self->ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	return n;
}

size_t pkt_icmp_echo_reply(uint8_t *buf, size_t cap, const struct pkt_self *self,
			   const struct pkt_info *req)
{
	size_t hdrs = PKT_ETH_HLEN + PKT_IP_HLEN + PKT_ICMP_HLEN;
	uint8_t mac[6], ip[4], *ic = buf + PKT_ETH_HLEN + PKT_IP_HLEN;
	uint16_t id = req->icmp_id, seq = req->icmp_seq;
	size_t dlen = req->payload_len;

	if (cap < hdrs || dlen > cap - hdrs || dlen > PKT_IP_MAX - PKT_IP_HLEN - PKT_ICMP_HLEN)
		return 0;
	memcpy(mac, req->src_mac, 6);
	memcpy(ip, req->src_ip, 4);
	/* the data first: in place it only moves towards the front, before
	 * the headers are written over where it was */
	if (dlen)
		memmove(ic + PKT_ICMP_HLEN, req->payload, dlen);
	put_eth(buf, mac, self->mac, ETHERTYPE_IPV4);
	put_ipv4(buf + PKT_ETH_HLEN, self->ip, ip, IPPROTO_ICMP_, PKT_ICMP_HLEN + dlen);
	ic[0] = ICMP_ECHO_REPLY;
	ic[1] = 0;
	put16(ic + 2, 0);
	put16(ic + 4, id);
	put16(ic + 6, seq);
	put16(ic + 2, pkt_csum(ic, PKT_ICMP_HLEN + dlen));
	return hdrs + dlen;
}

size_t pkt_udp_payload_offset(void)
{
	return PKT_ETH_HLEN + PKT_IP_HLEN + PKT_UDP_HLEN;
}

size_t pkt_udp_payload_max(size_t frame_cap)
{
	size_t off = pkt_udp_payload_offset(), max = PKT_IP_MAX - PKT_IP_HLEN - PKT_UDP_HLEN;

	if (frame_cap < off)
		return 0;
	return frame_cap - off < max ? frame_cap - off : max;
}

size_t pkt_udp_reply(uint8_t *buf, size_t cap, const struct pkt_self *self,
		     const struct pkt_info *req, size_t payload_len)
{
	uint8_t *u = buf + PKT_ETH_HLEN + PKT_IP_HLEN;
	uint8_t mac[6], ip[4];
	uint16_t port = req->src_port, csum;
	size_t ulen = PKT_UDP_HLEN + payload_len;

	if (payload_len > pkt_udp_payload_max(cap))
		return 0;
	memcpy(mac, req->src_mac, 6);
	memcpy(ip, req->src_ip, 4);
	put_eth(buf, mac, self->mac, ETHERTYPE_IPV4);
	put_ipv4(buf + PKT_ETH_HLEN, self->ip, ip, IPPROTO_UDP_, ulen);
	put16(u, self->udp_port);
	put16(u + 2, port);
	put16(u + 4, (uint16_t)ulen);
	put16(u + 6, 0);
	csum = pkt_udp_csum(self->ip, ip, u, ulen);
	put16(u + 6, csum ? csum : 0xffff);	/* 0 means "no checksum" */
	return pkt_udp_payload_offset() + payload_len;
}
