/*
 * pkt.h - Ethernet / IPv4 / UDP / ARP / ICMP parsing and reply building
 * for the DPDK fast path, over plain byte buffers (no DPDK types: the
 * lcore passes rte_pktmbuf_mtod() and the data length, and builds replies
 * straight into an mbuf's data room).
 *
 * Byte order: addresses are byte arrays in wire order (uint8_t[6] MACs,
 * uint8_t[4] IPv4 addresses, so 198.18.0.1 is {198, 18, 0, 1}); ports and
 * ICMP id/seq are host-order integers.  Checksums are host-order values
 * that the builders store big-endian.
 *
 * What is accepted (anything else is a drop verdict, counted by reason):
 *   - Ethernet II, destination our MAC or broadcast; no VLAN tag (a tagged
 *     frame is PKT_DROP_ETHERTYPE); source MAC not multicast.
 *   - ARP request (htype 1, ptype IPv4, hlen 6, plen 4, oper 1) whose target
 *     is our address -> PKT_ARP_REQ.
 *   - IPv4: version 4, 20 <= ihl*4 <= total length <= bytes present
 *     (Ethernet padding after the total length is ignored), header checksum
 *     valid, not a later fragment (offset 0; we do not reassemble),
 *     destination our address, source a unicast address.  The first
 *     fragment of a UDP datagram to our port (MF set) -> PKT_UDP_OVERSIZE,
 *     so the sender hears that its request does not fit one frame.
 *   - ICMP echo request (type 8 code 0) with a valid checksum -> PKT_ICMP_ECHO.
 *   - UDP: length field == IPv4 payload length, checksum valid or 0 (none,
 *     legal in IPv4), destination our port, source port not 0 -> PKT_UDP_REQ.
 *
 * Nothing here allocates or keeps state: every function may run on any
 * lcore concurrently.
 */
#ifndef INFERGW_PKT_H
#define INFERGW_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_ETH_HLEN	14
#define PKT_IP_HLEN	20	/* the header we write (no options) */
#define PKT_UDP_HLEN	8
#define PKT_ICMP_HLEN	8
#define PKT_ARP_LEN	28	/* the IPv4-over-Ethernet ARP body */
/* The largest IPv4 total length; a UDP payload is at most this - 28. */
#define PKT_IP_MAX	65535

/* Who we are on the wire. */
struct pkt_self {
	uint8_t mac[6];		/* the port's MAC (rte_eth_macaddr_get) */
	uint8_t ip[4];		/* our IPv4 address */
	uint16_t udp_port;	/* host order */
};

enum pkt_verdict {
	PKT_UDP_REQ,		/* a datagram for our address and port */
	PKT_ARP_REQ,		/* who-has our address */
	PKT_ICMP_ECHO,		/* echo request to us */
	PKT_UDP_OVERSIZE,	/* the first fragment of a datagram for our address
				 * and port: larger than one frame, never reassembled,
				 * answered with an error (payload: what this fragment
				 * holds; udp_len: the whole datagram's length) */
	PKT_DROP_SHORT,		/* fewer bytes than the headers need */
	PKT_DROP_MAC,		/* destination neither our MAC nor broadcast */
	PKT_DROP_ETHERTYPE,	/* not IPv4 or ARP (VLAN, IPv6, ...) */
	PKT_DROP_IP_VERSION,	/* version != 4 */
	PKT_DROP_IP_HDR,	/* ihl < 5, or ihl / total length / frame length inconsistent */
	PKT_DROP_IP_CSUM,	/* bad IPv4 header checksum */
	PKT_DROP_FRAGMENT,	/* MF set or offset != 0 */
	PKT_DROP_NOT_US,	/* another destination IPv4 address */
	PKT_DROP_SRC,		/* source we cannot answer: 0.0.0.0, broadcast, multicast
				 * IP, or a multicast source MAC */
	PKT_DROP_PROTO,		/* neither UDP nor ICMP */
	PKT_DROP_UDP_LEN,	/* UDP length < 8 or != IPv4 payload length */
	PKT_DROP_UDP_CSUM,	/* non-zero UDP checksum that does not verify */
	PKT_DROP_PORT,		/* another UDP destination port, or source port 0 */
	PKT_DROP_ARP,		/* malformed ARP, not a request, or not for our address */
	PKT_DROP_ICMP,		/* short, bad checksum, or not an echo request */
	PKT_VERDICT_COUNT
};

/* What pkt_parse found.  Pointers are views into the frame. */
struct pkt_info {
	uint8_t src_mac[6], dst_mac[6];	/* Ethernet; for ARP src_mac is the sender
					 * hardware address from the ARP body */
	uint8_t src_ip[4], dst_ip[4];	/* IPv4; for ARP the sender / target
					 * protocol addresses */
	uint16_t src_port, dst_port;	/* UDP, host order */
	uint16_t icmp_id, icmp_seq;	/* ICMP echo, host order */
	uint8_t ttl;			/* IPv4 TTL (0 for ARP) */
	const uint8_t *payload;		/* UDP: the datagram; ICMP: the echo data
					 * after the 8-byte ICMP header; ARP: NULL */
	size_t payload_len;
	size_t udp_len;			/* UDP: the datagram's length as its header says */
};

/*
 * pkt_parse - classify frame (len bytes, as received) for self.  Fills out
 * as far as the frame was parsed (fully for the three accepted verdicts;
 * out->payload is a view into frame).  Never reads outside
 * frame[0 .. len).  Returns the verdict.
 */
enum pkt_verdict pkt_parse(const uint8_t *frame, size_t len, const struct pkt_self *self,
			   struct pkt_info *out);

/* pkt_verdict_name - a stable snake_case label for metrics ("udp_req",
 * "arp_req", "icmp_echo", "short", "ip_csum", ...); "unknown" when out of
 * range.  Static storage. */
const char *pkt_verdict_name(enum pkt_verdict v);
/* pkt_verdict_is_drop - v is one of the PKT_DROP_* reasons. */
bool pkt_verdict_is_drop(enum pkt_verdict v);

/* ---- replies ----
 * Each builder writes a whole Ethernet frame into buf (cap bytes) and
 * returns its length, or 0 when it does not fit (buf then holds garbage).
 * They address the reply to req's sender (MAC, IP, port) from self.  The
 * IPv4 header has no options, TTL 64, DF set, ID 0.  buf may be the
 * request's own frame (answer in place, reusing the mbuf): the builders
 * only move data towards the front.
 */

/* pkt_arp_reply - "self->ip is at self->mac" to the asker of req (a
 * PKT_ARP_REQ).  42 bytes (callers pad to 60 if their NIC does not). */
size_t pkt_arp_reply(uint8_t *buf, size_t cap, const struct pkt_self *self,
		     const struct pkt_info *req);
/* pkt_icmp_echo_reply - the echo reply to req (a PKT_ICMP_ECHO): same id,
 * seq and data (copied, memmove-safe), checksums computed. */
size_t pkt_icmp_echo_reply(uint8_t *buf, size_t cap, const struct pkt_self *self,
			   const struct pkt_info *req);

/* pkt_udp_payload_offset - where a UDP reply's payload starts in the frame
 * (Ethernet + IPv4 without options + UDP = 42): encode the answer at
 * buf + pkt_udp_payload_offset(), then call pkt_udp_reply. */
size_t pkt_udp_payload_offset(void);
/* pkt_udp_payload_max - the largest payload pkt_udp_reply accepts for a
 * frame of at most frame_cap bytes (0 when not even the headers fit). */
size_t pkt_udp_payload_max(size_t frame_cap);
/*
 * pkt_udp_reply - the Ethernet, IPv4 and UDP headers (with both checksums)
 * around the payload_len bytes the caller already placed at
 * buf + pkt_udp_payload_offset(), from self's address and UDP port to
 * req's source (a PKT_UDP_REQ).  The frame length, or 0 when 42 +
 * payload_len exceeds cap or the IPv4 maximum.  Note: buf must not be the
 * request's frame while the request's payload is still needed (the
 * headers overwrite its first bytes if the request had IP options).
 */
size_t pkt_udp_reply(uint8_t *buf, size_t cap, const struct pkt_self *self,
		     const struct pkt_info *req, size_t payload_len);

/* ---- checksums (RFC 1071) ---- */

/* pkt_csum_add - add len bytes at p, as big-endian 16-bit words (an odd
 * last byte is padded with zero), to the running 32-bit sum.  Chains:
 * every chunk but the last must have even length. */
uint32_t pkt_csum_add(uint32_t sum, const void *p, size_t len);
/* pkt_csum_fold - fold sum to 16 bits and complement it: the value to
 * store in a checksum field (host order).  A buffer whose stored checksum
 * is right sums (with that field) to a fold of 0. */
uint16_t pkt_csum_fold(uint32_t sum);
/* pkt_csum - pkt_csum_fold(pkt_csum_add(0, p, len)): the IPv4 header / ICMP checksum. */
uint16_t pkt_csum(const void *p, size_t len);
/* pkt_udp_csum - the UDP checksum of the UDP header plus payload at udp
 * (len bytes, its checksum field as it is: zero it first to compute, or
 * keep it to verify, then 0 means valid) with the IPv4 pseudo-header
 * (src, dst, protocol 17, len).  When computing, a result of 0 must be
 * sent as 0xffff (pkt_udp_reply does). */
uint16_t pkt_udp_csum(const uint8_t src[4], const uint8_t dst[4], const void *udp, size_t len);

#endif
