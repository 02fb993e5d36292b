/*
 * udpload.c - a load generator for the datagram protocol
 * (docs/udp-protocol.md): what h2load is to the HTTP/2 port, for the DPDK
 * fast path.  tools/infergw-udp-client (Python) tops out near 60k
 * requests/s, about what the fast path answers, so its rate says more about
 * the client than the gateway; this one sends from C, times every request,
 * checks every answer, and reports the CPU it used itself, so that a
 * benchmark can tell a client-bound round (bench/dpdk.sh).
 *
 * usage: udpload -s HOST:PORT -d REQUEST.msgpack [-n N] [-w WINDOW]
 *                [-W WAIT_S] [-e EXPECT.f32] [-k] [-j]
 *
 * REQUEST.msgpack is one request whose map starts with the key "id" holding
 * a uint64 (msgpack 0xcf, 8 bytes): udpload writes ids 1..N there
 * (bench/dpdk_bench.py writes such a file).  WINDOW requests are kept in
 * flight (default 16); one without an answer WAIT_S seconds after it was
 * sent (default 2) is lost, and nothing is retried.  EXPECT.f32: the
 * answer's output, little-endian FP32; an answer whose data differs by more
 * than 1e-5 + 1e-4 x |expected| is counted wrong.  -k: no UDP checksum
 * (SO_NO_CHECK; over a veth pair the kernel leaves a partial one that the
 * fast path drops, see tools/infergw-udp-client --help).  -j: one JSON
 * object on stdout instead of text.
 *
 * Exit status 0 when every request got a 200 with the expected values, 1
 * otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UL_BURST 64		/* datagrams per sendmmsg / recvmmsg */
#define UL_MAX_DGRAM 65536
#define UL_SO_NO_CHECK 11	/* <asm-generic/socket.h> */
#define UL_N_CODES 8

struct ul_conf {
	const char *server, *request, *expect;
	long n;
	int window;
	double wait_s;
	bool no_csum, json;
};

/* What came back, by request id 1..n. */
struct ul_state {
	const struct ul_conf *cf;
	uint8_t *req;		/* the request, its id at req[id_at..id_at+8) */
	size_t req_len, id_at;
	float *expect;
	size_t n_expect;
	uint64_t *sent_ns;	/* [1..n]; 0: not yet sent */
	uint32_t *lat_us;	/* answered requests' latencies, in answer order */
	uint8_t *done;		/* [1..n]: answered or lost */
	long next, lo;		/* the next id to send; the lowest not yet done */
	long in_flight, answered, lost, wrong, stray;
	int codes[UL_N_CODES], code_val[UL_N_CODES], n_codes;
	uint64_t first_ns, last_ns;
	char example[256];	/* the first error message */
};

static uint64_t ul_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void *ul_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	long sz;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc((size_t)sz)) && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
		free(b);
		b = NULL;
	}
	if (b)
		*len = (size_t)sz;
	fclose(f);
	return b;
}

/* Where the request's id value starts: the map header, then "id" as a
 * fixstr, then 0xcf; 0 when the request does not start so. */
static size_t ul_id_offset(const uint8_t *b, size_t len)
{
	size_t h = (b[0] & 0xf0) == 0x80 ? 1 : b[0] == 0xde ? 3 : 0;

	if (!h || len < h + 4 + 8 || memcmp(b + h, "\xa2" "id" "\xcf", 4))
		return 0;
	return h + 4;
}

static void ul_put_id(uint8_t *p, uint64_t id)
{
	for (int i = 7; i >= 0; i--, id >>= 8)
		p[i] = (uint8_t)id;
}

static void ul_count_code(struct ul_state *s, int code)
{
	int i;

	for (i = 0; i < s->n_codes && s->code_val[i] != code; i++)
		;
	if (i == s->n_codes) {
		if (s->n_codes == UL_N_CODES)
			i--;	/* more kinds than kept: the last one counts them */
		else
			s->code_val[s->n_codes++] = code;
	}
	s->codes[i]++;
}

static bool ul_key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       !memcmp(k->via.str.ptr, name, n);
}

/* The first output's data of an answer map, or NULL. */
static const msgpack_object_bin *ul_data(const msgpack_object *outputs)
{
	const msgpack_object_map *m;

	if (outputs->type != MSGPACK_OBJECT_ARRAY || outputs->via.array.size < 1 ||
	    outputs->via.array.ptr[0].type != MSGPACK_OBJECT_MAP)
		return NULL;
	m = &outputs->via.array.ptr[0].via.map;
	for (uint32_t i = 0; i < m->size; i++)
		if (ul_key_is(&m->ptr[i].key, "data") && m->ptr[i].val.type == MSGPACK_OBJECT_BIN)
			return &m->ptr[i].val.via.bin;
	return NULL;
}

/* Whether bin holds the expected floats (within 1e-5 + 1e-4 x |expected|). */
static bool ul_values_ok(const struct ul_state *s, const msgpack_object_bin *bin)
{
	if (!s->expect)
		return true;
	if (!bin || bin->size != s->n_expect * sizeof(float))
		return false;
	for (size_t i = 0; i < s->n_expect; i++) {
		float v;

		memcpy(&v, bin->ptr + i * sizeof(float), sizeof(v));	/* little-endian host */
		if (!(fabsf(v - s->expect[i]) <= 1e-5f + 1e-4f * fabsf(s->expect[i])))
			return false;
	}
	return true;
}

/* One answer datagram: matched by id, timed, its code counted, its values
 * checked.  Unparsable, unknown or repeated ids count as stray. */
static void ul_answer(struct ul_state *s, const char *buf, size_t len, uint64_t now)
{
	const msgpack_object_bin *data = NULL;
	msgpack_unpacked u;
	long id = -1;
	int code = 200;
	const char *err = NULL;
	size_t err_len = 0;

	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, buf, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
	    u.data.type == MSGPACK_OBJECT_MAP) {
		const msgpack_object_map *m = &u.data.via.map;

		for (uint32_t i = 0; i < m->size; i++) {
			const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;

			if (ul_key_is(k, "id") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    v->via.u64 <= (uint64_t)s->cf->n)
				id = (long)v->via.u64;
			else if (ul_key_is(k, "code") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				code = (int)v->via.u64;
			else if (ul_key_is(k, "error") && v->type == MSGPACK_OBJECT_STR)
				err = v->via.str.ptr, err_len = v->via.str.size;
			else if (ul_key_is(k, "outputs"))
				data = ul_data(v);
		}
	}
	if (id < 1 || id >= s->next || s->done[id]) {
		s->stray++;
	} else {
		s->done[id] = 1;
		s->in_flight--;
		s->lat_us[s->answered++] = (uint32_t)((now - s->sent_ns[id]) / 1000);
		s->last_ns = now;
		ul_count_code(s, code);
		if (code == 200 && !ul_values_ok(s, data))
			s->wrong++;
		if (code != 200 && err && !s->example[0])
			snprintf(s->example, sizeof(s->example), "%.*s", (int)err_len, err);
	}
	msgpack_unpacked_destroy(&u);
}

/* Send requests until WINDOW are in flight or all n are sent. */
static int ul_send(struct ul_state *s, int fd)
{
	struct mmsghdr mm[UL_BURST];
	struct iovec iov[UL_BURST];
	static uint8_t *bufs[UL_BURST];
	int k = 0, sent;
	uint64_t now = ul_now_ns();

	while (k < UL_BURST && s->in_flight + k < s->cf->window && s->next + k <= s->cf->n) {
		if (!bufs[k] && !(bufs[k] = malloc(s->req_len)))
			return -1;
		memcpy(bufs[k], s->req, s->req_len);
		ul_put_id(bufs[k] + s->id_at, (uint64_t)(s->next + k));
		iov[k] = (struct iovec){ bufs[k], s->req_len };
		mm[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[k], .msg_iovlen = 1 } };
		k++;
	}
	if (!k)
		return 0;
	sent = sendmmsg(fd, mm, (unsigned)k, 0);
	if (sent < 0)
		return errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED ? 0 : -1;
	if (!s->first_ns)
		s->first_ns = now;
	for (int i = 0; i < sent; i++)
		s->sent_ns[s->next + i] = now;
	s->next += sent;
	s->in_flight += sent;
	return sent;
}

/* Take every answer waiting on fd; how many. */
static int ul_recv(struct ul_state *s, int fd)
{
	static char bufs[UL_BURST][2048];
	struct mmsghdr mm[UL_BURST];
	struct iovec iov[UL_BURST];
	int got;
	uint64_t now;

	for (int i = 0; i < UL_BURST; i++) {
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	got = recvmmsg(fd, mm, UL_BURST, MSG_DONTWAIT, NULL);
	if (got <= 0)
		return 0;	/* EAGAIN, or an ICMP error (ECONNREFUSED): nothing to take */
	now = ul_now_ns();
	for (int i = 0; i < got; i++)
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
			s->stray++;
		else
			ul_answer(s, bufs[i], mm[i].msg_len, now);
	return got;
}

/* Requests sent more than wait_s ago without an answer are lost; lo moves
 * past every id that is done. */
static void ul_expire(struct ul_state *s, uint64_t now)
{
	uint64_t wait_ns = (uint64_t)(s->cf->wait_s * 1e9);

	while (s->lo < s->next && (s->done[s->lo] || now - s->sent_ns[s->lo] > wait_ns)) {
		if (!s->done[s->lo]) {
			s->done[s->lo] = 1;
			s->in_flight--;
			s->lost++;
		}
		s->lo++;
	}
}

static int ul_connect(const struct ul_conf *cf)
{
	char host[256];
	const char *colon = strrchr(cf->server, ':');
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *ai;
	int fd, one = 1, rcv = 4 << 20;

	if (!colon || (size_t)(colon - cf->server) >= sizeof(host)) {
		fprintf(stderr, "udpload: -s wants HOST:PORT, not %s\n", cf->server);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - cf->server), cf->server);
	if (getaddrinfo(host, colon + 1, &hints, &ai)) {
		fprintf(stderr, "udpload: cannot resolve %s\n", cf->server);
		return -1;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) ||
	    (cf->no_csum && setsockopt(fd, SOL_SOCKET, UL_SO_NO_CHECK, &one, sizeof(one)))) {
		fprintf(stderr, "udpload: socket to %s: %s\n", cf->server, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));	/* best effort */
	freeaddrinfo(ai);
	return fd;
}

/* The run: send, take answers, expire, until every request is done. */
static int ul_run(struct ul_state *s, int fd)
{
	while (s->lo <= s->cf->n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (ul_send(s, fd) < 0) {
			fprintf(stderr, "udpload: send: %s\n", strerror(errno));
			return -1;
		}
		if (!ul_recv(s, fd) && poll(&p, 1, 1) < 0 && errno != EINTR)
			return -1;
		ul_expire(s, ul_now_ns());
	}
	return 0;
}

static int ul_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static double ul_pct(const uint32_t *v, long n, double q)
{
	return n ? v[(long)(q * (double)(n - 1) + 0.5)] : 0.0;
}

static void ul_report(struct ul_state *s, double wall_s, double cpu_s)
{
	double span = s->last_ns > s->first_ns ? (double)(s->last_ns - s->first_ns) * 1e-9 : 0;
	double rps = span > 0 ? (double)s->answered / span : 0;

	qsort(s->lat_us, (size_t)s->answered, sizeof(*s->lat_us), ul_cmp_u32);
	if (s->cf->json) {
		printf("{\"requests\": %ld, \"answered\": %ld, \"lost\": %ld, \"wrong\": %ld, "
		       "\"stray\": %ld, \"codes\": {", s->cf->n, s->answered, s->lost, s->wrong,
		       s->stray);
		for (int i = 0; i < s->n_codes; i++)
			printf("%s\"%d\": %d", i ? ", " : "", s->code_val[i], s->codes[i]);
		printf("}, \"req_per_s\": %.1f, \"p50_us\": %.0f, \"p90_us\": %.0f, "
		       "\"p99_us\": %.0f, \"wall_s\": %.6f, \"cpu_s\": %.6f, \"cpu_fraction\": %.3f, "
		       "\"window\": %d, \"example\": \"", rps, ul_pct(s->lat_us, s->answered, 0.5),
		       ul_pct(s->lat_us, s->answered, 0.9), ul_pct(s->lat_us, s->answered, 0.99),
		       wall_s, cpu_s, wall_s > 0 ? cpu_s / wall_s : 0, s->cf->window);
		for (const char *c = s->example; *c; c++)	/* the gateway's text: escape it */
			printf(*c == '"' || *c == '\\' ? "\\%c" : (unsigned char)*c < 0x20 ? "?" :
			       "%c", *c);
		printf("\"}\n");
		return;
	}
	printf("requests %ld, answered %ld, lost %ld, wrong values %ld, stray %ld\ncodes:",
	       s->cf->n, s->answered, s->lost, s->wrong, s->stray);
	for (int i = 0; i < s->n_codes; i++)
		printf(" %d x%d", s->code_val[i], s->codes[i]);
	printf("\n%.0f req/s, latency p50 %.0f us, p90 %.0f us, p99 %.0f us (window %d)\n"
	       "client CPU %.3f s of %.3f s wall (%.0f%% of a core)\n", rps,
	       ul_pct(s->lat_us, s->answered, 0.5), ul_pct(s->lat_us, s->answered, 0.9),
	       ul_pct(s->lat_us, s->answered, 0.99), s->cf->window, cpu_s, wall_s,
	       wall_s > 0 ? 100 * cpu_s / wall_s : 0);
	if (s->example[0])
		printf("first error: %s\n", s->example);
}

static double ul_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static int ul_usage(const char *argv0, int rc)
{
	fprintf(rc ? stderr : stdout,
		"usage: %s -s HOST:PORT -d REQUEST.msgpack [-n N (1000)] [-w WINDOW (16)]\n"
		"       [-W WAIT_S (2)] [-e EXPECT.f32] [-k (no UDP checksum)] [-j (JSON)]\n"
		"A load generator for infergw's datagram protocol (docs/udp-protocol.md);\n"
		"see bench/udpload.c.\n", argv0);
	return rc;
}

static int ul_parse(int argc, char **argv, struct ul_conf *cf)
{
	int opt;

	*cf = (struct ul_conf){ .n = 1000, .window = 16, .wait_s = 2.0 };
	while ((opt = getopt(argc, argv, "s:d:n:w:W:e:kjh")) != -1) {
		switch (opt) {
		case 's': cf->server = optarg; break;
		case 'd': cf->request = optarg; break;
		case 'n': cf->n = atol(optarg); break;
		case 'w': cf->window = atoi(optarg); break;
		case 'W': cf->wait_s = atof(optarg); break;
		case 'e': cf->expect = optarg; break;
		case 'k': cf->no_csum = true; break;
		case 'j': cf->json = true; break;
		case 'h': return ul_usage(argv[0], 0) - 1;
		default: return ul_usage(argv[0], 2);
		}
	}
	if (!cf->server || !cf->request || cf->n < 1 || cf->n > 100000000 || cf->window < 1 ||
	    cf->window > 65536 || !(cf->wait_s > 0)) {
		fprintf(stderr, "udpload: -s and -d are required; -n 1..1e8, -w 1..65536, -W > 0\n");
		return ul_usage(argv[0], 2);
	}
	return 0;
}

/* Load the request (and the expected output) into s; 0, or an exit status. */
static int ul_load(struct ul_state *s, const struct ul_conf *cf)
{
	size_t len = 0;

	s->cf = cf;
	s->req = ul_read_file(cf->request, &s->req_len);
	if (!s->req || !(s->id_at = ul_id_offset(s->req, s->req_len))) {
		fprintf(stderr, "udpload: %s: %s\n", cf->request, s->req ?
			"not a msgpack map starting with \"id\" as a uint64 (0xcf)" : strerror(errno));
		return 2;
	}
	if (cf->expect) {
		s->expect = ul_read_file(cf->expect, &len);
		if (!s->expect || len % sizeof(float)) {
			fprintf(stderr, "udpload: %s: not little-endian FP32 values\n", cf->expect);
			return 2;
		}
		s->n_expect = len / sizeof(float);
	}
	s->sent_ns = calloc((size_t)cf->n + 1, sizeof(*s->sent_ns));
	s->lat_us = calloc((size_t)cf->n, sizeof(*s->lat_us));
	s->done = calloc((size_t)cf->n + 1, 1);
	if (!s->sent_ns || !s->lat_us || !s->done) {
		fprintf(stderr, "udpload: out of memory\n");
		return 1;
	}
	s->next = s->lo = 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct ul_conf cf;
	struct ul_state s = { 0 };
	int fd, rc = ul_parse(argc, argv, &cf);
	uint64_t t0;
	double c0;

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = ul_load(&s, &cf);
	if (rc)
		return rc;
	fd = ul_connect(&cf);
	if (fd < 0)
		return 1;
	t0 = ul_now_ns();
	c0 = ul_cpu_s();
	if (ul_run(&s, fd))
		return 1;
	ul_report(&s, (double)(ul_now_ns() - t0) * 1e-9, ul_cpu_s() - c0);
	close(fd);
	return s.answered == cf.n && s.wrong == 0 && s.n_codes == 1 && s.code_val[0] == 200 ? 0 : 1;
}
